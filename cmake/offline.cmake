# CMake toolchain file used for every cmake-built dependency (see .cargo/config.toml).
# deno_core's QuickJS engine builds WAMR, whose CMake fetches `simde` from the network; on
# machines without internet, point it at Debian's libsimde-dev copy instead. With no local copy
# the normal fetch runs.
if(EXISTS "/usr/include/simde/simde-common.h")
  set(FETCHCONTENT_FULLY_DISCONNECTED ON CACHE BOOL "Use local sources only" FORCE)
  set(FETCHCONTENT_SOURCE_DIR_SIMDE "/usr/include" CACHE PATH "Local simde (libsimde-dev)" FORCE)
endif()
