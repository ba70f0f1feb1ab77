# CMake toolchain file: cross-compile membroker for Windows x86_64 with mingw-w64
# (Debian package mingw-w64) and run test executables under Wine (package wine64).
#
#   cmake -S . -B build-win -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=scripts/toolchain-mingw64.cmake
#
# Third-party libraries (libuv, cJSON) are looked up only in the mingw sysroot and
# in MB_MINGW_PREFIX, where scripts/deps.sh installs static mingw builds of them.
# Default: $ENV{MB_DEPS_DIR}/mingw64 if MB_DEPS_DIR is set, else <repo>/build/deps/mingw64.

set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(MB_MINGW_TRIPLET x86_64-w64-mingw32)

# ---- deps prefix
if(DEFINED ENV{MB_DEPS_DIR} AND NOT "$ENV{MB_DEPS_DIR}" STREQUAL "")
  set(_mb_default_prefix "$ENV{MB_DEPS_DIR}/mingw64")
else()
  set(_mb_default_prefix "${CMAKE_CURRENT_LIST_DIR}/../build/deps/mingw64")
endif()
get_filename_component(_mb_default_prefix "${_mb_default_prefix}" ABSOLUTE)
set(MB_MINGW_PREFIX "${_mb_default_prefix}" CACHE PATH
    "Prefix holding mingw-w64 builds of libuv and cJSON (scripts/deps.sh)")
# try_compile() projects re-read this file without our cache: pass the value on.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES MB_MINGW_PREFIX)

# ---- compilers: prefer the win32 thread model (no libwinpthread-1.dll needed)
foreach(_mb_lang C CXX)
  if(_mb_lang STREQUAL "C")
    set(_mb_names ${MB_MINGW_TRIPLET}-gcc-win32 ${MB_MINGW_TRIPLET}-gcc)
  else()
    set(_mb_names ${MB_MINGW_TRIPLET}-g++-win32 ${MB_MINGW_TRIPLET}-g++)
  endif()
  if(NOT CMAKE_${_mb_lang}_COMPILER)
    find_program(_mb_${_mb_lang}_compiler NAMES ${_mb_names} NO_CACHE)
    if(_mb_${_mb_lang}_compiler)
      set(CMAKE_${_mb_lang}_COMPILER "${_mb_${_mb_lang}_compiler}")
    else()
      set(CMAKE_${_mb_lang}_COMPILER ${MB_MINGW_TRIPLET}-${_mb_lang}-not-found)
      message(WARNING "mingw-w64 ${_mb_lang} compiler not found: run scripts/deps.sh")
    endif()
  endif()
endforeach()
# The "-win32" suffix hides the triplet from CMake's binutils lookup: name them.
find_program(CMAKE_RC_COMPILER NAMES ${MB_MINGW_TRIPLET}-windres)
find_program(CMAKE_AR NAMES ${MB_MINGW_TRIPLET}-ar)
find_program(CMAKE_RANLIB NAMES ${MB_MINGW_TRIPLET}-ranlib)
find_program(CMAKE_NM NAMES ${MB_MINGW_TRIPLET}-nm)
find_program(CMAKE_OBJDUMP NAMES ${MB_MINGW_TRIPLET}-objdump)
find_program(CMAKE_STRIP NAMES ${MB_MINGW_TRIPLET}-strip)

# ---- where to find things
set(CMAKE_FIND_ROOT_PATH "/usr/${MB_MINGW_TRIPLET}" "${MB_MINGW_PREFIX}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config (FindPkgConfig) must not hand out the host's Linux libraries.
set(ENV{PKG_CONFIG_LIBDIR} "${MB_MINGW_PREFIX}/lib/pkgconfig:${MB_MINGW_PREFIX}/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# ---- static runtime: the .exe files need only Windows system DLLs
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static-libgcc -static-libstdc++")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static-libgcc -static-libstdc++")

# ---- run .exe files (ctest, add_custom_command, try_run) under Wine
# wine-run.sh sets WINEDEBUG=-all and WINEPREFIX (its first argument), creating
# the prefix once under a lock so parallel ctest jobs do not race.
set(CMAKE_CROSSCOMPILING_EMULATOR
    "${CMAKE_CURRENT_LIST_DIR}/wine-run.sh;${CMAKE_BINARY_DIR}/wineprefix")
