"""kill -9 the server with runs queued and a log half uploaded, then restart it:
nothing acknowledged is lost and a re-sent chunk is not stored twice."""

import threading
import time

from davit_harness import Launcher, spool_record


def test_kill9_keeps_everything_acknowledged(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    queued = [server.submit("p", commands=["echo %d" % i]) for i in range(5)]
    msgs = la.poll()
    running = [m["run"]["id"] for m in msgs if m["type"] == "run"][0]
    assert running == queued[0]
    la.event(running, "running", phase="plan")

    records = [spool_record("o", i + 1, ("line %d " % i) * 50 + "\n", "plan") for i in range(400)]
    spool = b"".join(records)
    acked = {"offset": 0}
    stop = threading.Event()

    def upload():
        off = 0
        for i in range(0, len(records), 4):
            if stop.is_set():
                return
            chunk = b"".join(records[i:i + 4])
            try:
                st, data, _ = la.log(running, off, chunk)
            except OSError:
                return  # the server died under us
            if st != 200:
                return
            off = data["next_offset"]
            acked["offset"] = off

    t = threading.Thread(target=upload)
    t.start()
    while acked["offset"] < len(spool) // 3:
        time.sleep(0.001)
    server.kill9()
    stop.set()
    t.join()
    acknowledged = acked["offset"]
    assert 0 < acknowledged < len(spool)

    server.start()
    # every run is still there: four queued, one running
    states = {r["id"]: r["state"] for r in server.ok("GET", "/api/v1/runs")["runs"]}
    assert states == {rid: ("running" if rid == running else "queued") for rid in queued}
    stored = server.request("GET", "/api/v1/runs/%d/logs?format=raw" % running)[1]
    assert len(stored) >= acknowledged and spool.startswith(stored)
    # the session survived too; re-send the last acknowledged chunk
    last = acknowledged - len(b"".join(records[:4]))
    st, data, _ = la.log(running, max(last, 0), spool[max(last, 0):acknowledged])
    assert st == 200 and data["next_offset"] == len(stored)
    # resume from what the server has, as a restarted launcher does
    off = data["next_offset"]
    while off < len(spool):
        i = 0
        pos = 0
        while pos < off:
            pos += len(records[i])
            i += 1
        st, data, _ = la.log(running, off, b"".join(records[i:i + 8]))
        assert st == 200
        off = data["next_offset"]
    assert server.request("GET", "/api/v1/runs/%d/logs?format=raw" % running)[1] == spool
    la.event(running, "result", outcome="finished")
    # the queued runs are dispatched in order after the restart
    got = []
    while len(got) < 4:
        for m in la.poll():
            if m["type"] == "run":
                got.append(m["run"]["id"])
                la.event(m["run"]["id"], "result", outcome="finished")
    assert got == queued[1:]
