# The part of the release toolchains (toolchain-*-linux-musl.cmake) that both
# targets share: a static build against musl and the libraries that
# scripts/release-deps built into its cache. It reads the deps.cmake that
# scripts/release-deps printed, passed as -DDAVIT_RELEASE_DEPS=PATH.
set(CMAKE_SYSTEM_NAME Linux)
# try_compile projects read the toolchain again: they need the same file.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES DAVIT_RELEASE_DEPS)
if(NOT DAVIT_RELEASE_DEPS OR NOT EXISTS "${DAVIT_RELEASE_DEPS}")
    message(FATAL_ERROR "the release toolchain needs -DDAVIT_RELEASE_DEPS=<deps.cmake written by "
        "scripts/release-deps>; run `make release`")
endif()
include(${DAVIT_RELEASE_DEPS})

set(CMAKE_C_COMPILER ${DAVIT_TARGET_CC})
set(CMAKE_AR ${DAVIT_TARGET_AR} CACHE FILEPATH "")
set(CMAKE_RANLIB ${DAVIT_TARGET_RANLIB} CACHE FILEPATH "")

# Only the cache's prefixes: never a glibc library from /usr/lib. A library
# that no prefix holds (m, pthread, dl) is left to the compiler, which takes
# musl's.
set(CMAKE_FIND_ROOT_PATH ${DAVIT_DEPS_PREFIXES})
# A -l of a .pc file without its -L (curl's -lssl) is looked for in every prefix.
set(CMAKE_PREFIX_PATH ${DAVIT_DEPS_PREFIXES})
set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
set(CMAKE_FIND_USE_CMAKE_SYSTEM_PATH FALSE)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config sees only the cache's .pc files, and always answers for static
# linking (Libs.private included).
set(_davit_pc "")
foreach(p IN LISTS DAVIT_DEPS_PREFIXES)
    string(APPEND _davit_pc "${p}/lib/pkgconfig:")
endforeach()
set(ENV{PKG_CONFIG_LIBDIR} "${_davit_pc}")
set(ENV{PKG_CONFIG_PATH} "")
set(PKG_CONFIG_EXECUTABLE ${CMAKE_CURRENT_LIST_DIR}/../scripts/release-pkg-config CACHE FILEPATH "")

set(OPENSSL_ROOT_DIR ${DAVIT_OPENSSL_PREFIX})
set(OPENSSL_USE_STATIC_LIBS TRUE)
set(BEARSSL_INCLUDE_DIR ${DAVIT_BEARSSL_PREFIX}/include/bearssl CACHE PATH "")
set(BEARSSL_LIBRARY ${DAVIT_BEARSSL_PREFIX}/lib/libbearssl.a CACHE FILEPATH "")
set(BEARSSL_STATIC_LIBRARY ${DAVIT_BEARSSL_PREFIX}/lib/libbearssl.a CACHE FILEPATH "")
set(MUSL_GCC ${DAVIT_TARGET_CC} CACHE FILEPATH "")
set(DAVIT_STATIC ON CACHE BOOL "")
