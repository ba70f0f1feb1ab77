# check.cmake - the package tests (CTest package.find_package, package.pkg_config): install a
# build folder into a stage and use the installed client library the way a game server's build
# would. Run by CTest as
#
#   cmake -DMODE=find_package|pkg_config -DBUILD_DIR=<build> -DWORK_DIR=<scratch>
#         -DCONSUMER_DIR=<repo>/tests/package -DCONFIG=<config> -DGENERATOR=<generator>
#         [-DMAKE_PROGRAM=...] -DC_COMPILER=<cc> [-DTOOLCHAIN_FILE=<file>]
#         -DCROSSCOMPILING=<bool> -DTARGET_WIN32=<bool> -DVERSION=<x.y.z>
#         [-DSANITIZE_FLAGS=<list>] -P check.cmake
#
# find_package: configure tests/package (find_package(membroker 0.1)) with CMAKE_PREFIX_PATH
#   at the stage, this build's compiler or toolchain file and sanitizer flags, build
#   consumer_static and consumer_shared, and run both (natively only).
# pkg_config: check what `pkg-config membroker` says about the stage; natively compile
#   consumer.c with those flags and run it, cross (mingw) link it statically with
#   `--static` flags alone. Prints "SKIPPED:" (CTest: not run) without pkg-config.
#
# A sanitizer build's libmembroker holds instrumented code: whoever links it must link the
# sanitizer runtime too, so the consumers get SANITIZE_FLAGS for compiling and linking, as a
# user of such a build would have to. The consumers need no broker: they attach to an
# instance nobody runs and expect broker_not_running.
cmake_minimum_required(VERSION 3.16)

foreach(v MODE BUILD_DIR WORK_DIR CONSUMER_DIR GENERATOR C_COMPILER VERSION)
  if("${${v}}" STREQUAL "")
    message(FATAL_ERROR "check.cmake: -D${v}= is required")
  endif()
endforeach()

# mb_run(<what> <out-var> COMMAND...): run, fail with the command and its output unless it
# exits 0; <out-var> receives stdout + stderr.
function(mb_run what out)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "${what} failed (${rc}):\n  ${cmd}\n${o}${e}")
  endif()
  set(${out} "${o}${e}" PARENT_SCOPE)
endfunction()

# mb_expect(<text> <regex> <what>): fail unless text matches regex.
function(mb_expect text regex what)
  if(NOT text MATCHES "${regex}")
    message(FATAL_ERROR "${what}: expected /${regex}/ in:\n${text}")
  endif()
endfunction()

set(stage ${WORK_DIR}/stage)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# ---- install ---------------------------------------------------------------------------
set(config_args)
if(NOT "${CONFIG}" STREQUAL "")
  set(config_args --config ${CONFIG})
endif()
mb_run("cmake --install" out ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${stage}
       ${config_args})

if(TARGET_WIN32)
  set(exe .exe)
  set(os_lib advapi32)
else()
  set(exe "")
  set(os_lib rt)
endif()
foreach(f bin/membroker${exe} bin/mbctl${exe} include/membroker.h)
  if(NOT EXISTS ${stage}/${f})
    message(FATAL_ERROR "the install has no ${f}:\n${out}")
  endif()
endforeach()
file(GLOB_RECURSE targets_file ${stage}/*/membrokerTargets.cmake)
file(GLOB_RECURSE pc_file ${stage}/*/pkgconfig/membroker.pc)
if(NOT targets_file OR NOT pc_file)
  message(FATAL_ERROR "the install has no membrokerTargets.cmake or membroker.pc:\n${out}")
endif()
# The static library's link interface names the OS library, never a build machine's path.
file(STRINGS ${targets_file} link_lines REGEX "INTERFACE_LINK_LIBRARIES")
string(JOIN "\n" link_lines ${link_lines})
mb_expect("${link_lines}" "\\$<LINK_ONLY:${os_lib}>" "membrokerTargets.cmake")
mb_expect("${link_lines}" "\\$<LINK_ONLY:Threads::Threads>" "membrokerTargets.cmake")
if(link_lines MATCHES "/")
  message(FATAL_ERROR "membrokerTargets.cmake links a path:\n${link_lines}")
endif()

set(flags "")
if(SANITIZE_FLAGS)
  string(JOIN " " flags ${SANITIZE_FLAGS})
endif()

# ---- find_package ----------------------------------------------------------------------
if(MODE STREQUAL "find_package")
  set(args -S ${CONSUMER_DIR} -B ${WORK_DIR}/consumer -G ${GENERATOR}
           -DCMAKE_PREFIX_PATH=${stage} -DCMAKE_BUILD_TYPE=${CONFIG}
           "-DCMAKE_C_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${flags}")
  if(MAKE_PROGRAM)
    list(APPEND args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
  endif()
  if(TOOLCHAIN_FILE)
    # A cross toolchain searches packages only below CMAKE_FIND_ROOT_PATH (the target's
    # sysroot); the stage is one more such root.
    list(APPEND args -DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE} -DCMAKE_STAGING_PREFIX=${stage})
  else()
    list(APPEND args -DCMAKE_C_COMPILER=${C_COMPILER})
  endif()
  mb_run("configuring the consumer" out ${CMAKE_COMMAND} ${args})
  mb_run("building the consumer" out ${CMAKE_COMMAND} --build ${WORK_DIR}/consumer
         ${config_args})
  if(NOT CROSSCOMPILING)
    foreach(kind static shared)
      file(GLOB_RECURSE prog ${WORK_DIR}/consumer/consumer_${kind}${exe})
      if(NOT prog)
        message(FATAL_ERROR "no consumer_${kind}${exe} was built")
      endif()
      mb_run("consumer_${kind}" out ${prog})
      mb_expect("${out}" "consumer \\(${kind}, membroker.h ${VERSION}\\): broker_not_running"
                "consumer_${kind}")
      message(STATUS "${out}")
    endforeach()
  endif()
  message(STATUS "find_package(membroker ${VERSION}): ok")
  return()
endif()

# ---- pkg-config ------------------------------------------------------------------------
if(NOT MODE STREQUAL "pkg_config")
  message(FATAL_ERROR "check.cmake: MODE is find_package or pkg_config, not '${MODE}'")
endif()
find_program(PKG_CONFIG NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG)
  message("SKIPPED: no pkg-config on this machine")
  return()
endif()
get_filename_component(pc_dir ${pc_file} DIRECTORY)
# Only the stage: no system .pc files, none of the toolchain's.
set(ENV{PKG_CONFIG_PATH} ${pc_dir})
set(ENV{PKG_CONFIG_LIBDIR} ${pc_dir})

mb_run("pkg-config --modversion" out ${PKG_CONFIG} --modversion membroker)
mb_expect("${out}" "^${VERSION}\n" "pkg-config --modversion")
mb_run("pkg-config --cflags" cflags ${PKG_CONFIG} --cflags membroker)
mb_run("pkg-config --libs" libs ${PKG_CONFIG} --libs membroker)
mb_run("pkg-config --libs --static" static_libs ${PKG_CONFIG} --libs --static membroker)
separate_arguments(cflags UNIX_COMMAND "${cflags}")
separate_arguments(libs UNIX_COMMAND "${libs}")
separate_arguments(static_libs UNIX_COMMAND "${static_libs}")
string(REPLACE ";" " " shown "${cflags} ${libs} [--static: ${static_libs}]")
message(STATUS "pkg-config --cflags --libs membroker: ${shown}")

# The -I and -L folders are the stage's.
set(found_header FALSE)
foreach(f IN LISTS cflags)
  if(f MATCHES "^-I(.*)")
    if(EXISTS "${CMAKE_MATCH_1}/membroker.h")
      set(found_header TRUE)
    endif()
  endif()
endforeach()
set(found_lib FALSE)
foreach(f IN LISTS libs)
  if(f MATCHES "^-L(.*)")
    file(GLOB l "${CMAKE_MATCH_1}/libmembroker.*")
    if(l)
      set(found_lib TRUE)
    endif()
  endif()
endforeach()
if(NOT found_header OR NOT found_lib)
  message(FATAL_ERROR "pkg-config's -I / -L do not lead to membroker.h / libmembroker: "
                      "${cflags} ${libs}")
endif()
mb_expect("${libs}" "(^|;)-lmembroker(;|$)" "pkg-config --libs")
if(TARGET_WIN32)
  mb_expect("${static_libs}" "-lmembroker;(.*;)?-ladvapi32" "pkg-config --libs --static")
else()
  mb_expect("${static_libs}" "-lmembroker;(.*;)?-pthread;(.*;)?-lrt" "pkg-config --libs --static")
endif()

set(prog ${WORK_DIR}/consumer_pc${exe})
if(NOT CROSSCOMPILING)
  # Linked as `cc consumer.c $(pkg-config --cflags --libs membroker)`: against the shared
  # library, found at run time through LD_LIBRARY_PATH.
  mb_run("compiling consumer.c with pkg-config's flags" out ${C_COMPILER} ${SANITIZE_FLAGS}
         ${cflags} ${CONSUMER_DIR}/consumer.c -o ${prog} ${libs})
  set(libdir ${libs})
  list(FILTER libdir INCLUDE REGEX "^-L")
  string(REGEX REPLACE "(^|;)-L" "\\1" libdir "${libdir}")
  string(REPLACE ";" ":" libdir "${libdir}")
  mb_run("consumer_pc" out ${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${libdir}" ${prog})
  mb_expect("${out}" "consumer \\(pkg-config, membroker.h ${VERSION}\\): broker_not_running"
            "consumer_pc")
  message(STATUS "${out}")
  # README's two other lines, run with no LD_LIBRARY_PATH: the shared library found through an
  # rpath to pkg-config's libdir, and libmembroker.a linked in through static_libs (a program
  # that still needed libmembroker.so would not start).
  mb_run("pkg-config --variable=libdir" pc_libdir ${PKG_CONFIG} --variable=libdir membroker)
  string(STRIP "${pc_libdir}" pc_libdir)
  mb_run("linking consumer.c with an rpath to pkg-config's libdir" out ${C_COMPILER}
         ${SANITIZE_FLAGS} ${cflags} ${CONSUMER_DIR}/consumer.c -o ${prog} ${libs}
         -Wl,-rpath,${pc_libdir})
  mb_run("consumer_pc (rpath)" out ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${prog})
  mb_expect("${out}" "consumer \\(pkg-config, membroker.h ${VERSION}\\): broker_not_running"
            "consumer_pc (rpath)")
  mb_run("pkg-config --variable=static_libs" pc_static ${PKG_CONFIG} --variable=static_libs
         membroker)
  separate_arguments(pc_static UNIX_COMMAND "${pc_static}")
  mb_expect("${pc_static}" "libmembroker\\.a(;|$)" "pkg-config --variable=static_libs")
  mb_run("linking consumer.c with static_libs" out ${C_COMPILER} ${SANITIZE_FLAGS} ${cflags}
         ${CONSUMER_DIR}/consumer.c -o ${prog}_static ${pc_static})
  mb_run("consumer_pc (static)" out ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH
         ${prog}_static)
  mb_expect("${out}" "consumer \\(pkg-config, membroker.h ${VERSION}\\): broker_not_running"
            "consumer_pc (static)")
elseif(TARGET_WIN32)
  # mingw: a fully static .exe from `--static` flags alone proves Libs.private is complete.
  mb_run("linking consumer.c statically with pkg-config's --static flags" out ${C_COMPILER}
         ${cflags} ${CONSUMER_DIR}/consumer.c -o ${prog} -static ${static_libs})
endif()
message(STATUS "pkg-config membroker ${VERSION}: ok")
