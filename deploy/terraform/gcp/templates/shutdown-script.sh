#!/bin/sh
# Shutdown script of a davit worker (deploy/terraform/gcp): when the group
# deletes or recreates the instance, drain the launcher (it finishes its runs,
# then exits) before the machine goes. GCP waits for this only so long
# (docs/deploy-gcp.md, "How long GCP waits"): then it powers the machine off.
echo "davit: shutdown: draining the launcher"
systemctl stop davit-launcher.service
echo "davit: shutdown: the launcher has exited"
