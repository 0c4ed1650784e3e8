# Cross-compiles dizuo for 64-bit ARM Linux with Debian's cross toolchain and multiarch
# libraries, and runs the built tests under QEMU's user-mode emulator (scripts/test-arm64.sh
# installs all of it). Use: cmake -G Ninja -B build-arm64 \
#   -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Libraries and packages of the target only (Debian multiarch: /usr/lib/aarch64-linux-gnu);
# programs (cmake's helpers, pkg-config) of the build machine.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")

# ctest and gtest_discover_tests run the test binaries through this. No -L sysroot: the
# binaries then load the multiarch C library (libc6:arm64, which libfmt-dev:arm64 and the others
# pull in) with its own loader, /lib/ld-linux-aarch64.so.1. With -L /usr/aarch64-linux-gnu the
# cross package's loader met the multiarch libc.so.6 of another build and creating a thread hung.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)

# The build machine's CUDA toolkit targets its own architecture, not this one.
set(DIZUO_CUDA OFF CACHE BOOL "Build the CUDA backend")
