# Release build for aarch64 Linux: static, musl (make release, scripts/release).
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/release-musl.cmake)
