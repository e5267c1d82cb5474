# Release build for x86_64 Linux: static, musl (make release, scripts/release).
set(CMAKE_SYSTEM_PROCESSOR x86_64)
include(${CMAKE_CURRENT_LIST_DIR}/release-musl.cmake)
