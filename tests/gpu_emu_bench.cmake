# The benchmark programs on the CPU emulator (gpu_emu/, see gpu.cmake), so that their code paths
# (CUDA events, device-resident runs, per-node profiling, the JSON results, exit codes) run in
# every build and not first on the GPU machine. Timings from the emulator are meaningless; the
# tests check structure, ordering and exit codes only.
#   vit-bench-emu   benchmarks/vit_bench.cpp + random_model.cpp + bench_util.cu (launches
#                   rewritten by gpu_emu/transform.cmake) linked with the emulated engine
#   vit-soak-emu    benchmarks/soak.cpp (VIT_WITH_CUDA) linked with vit_emu_rt (gpu.cmake: the C API
#                   and the emulated engine, exporting the emulated CUDA runtime too, so that the
#                   soak's own cudaMemGetInfo sees the device its session allocates on)
#   test_bench_emu  tests/test_bench_emu.cpp: runs both programs (ctest "emu.EmuBench.*",
#                   "emu.EmuSoak.*") and unit-tests bench_util / random_model ("emu.EmuBenchUtil.*")
if(TARGET vit_gpu_emu AND TARGET vit_emu_rt)  # vit_emu_rt: VIT_TEST_EMU_PROGRAMS
  set(_bench_src ${PROJECT_SOURCE_DIR}/benchmarks)
  set(_bench_util_emu ${CMAKE_CURRENT_BINARY_DIR}/gpu_emu_gen/bench_util_emu.cpp)
  add_custom_command(OUTPUT ${_bench_util_emu}
                     COMMAND ${CMAKE_COMMAND} -DIN=${_bench_src}/bench_util.cu -DOUT=${_bench_util_emu}
                             -P ${CMAKE_CURRENT_SOURCE_DIR}/gpu_emu/transform.cmake
                     DEPENDS ${_bench_src}/bench_util.cu ${CMAKE_CURRENT_SOURCE_DIR}/gpu_emu/transform.cmake
                     COMMENT "gpu-emu: rewriting benchmarks/bench_util.cu")

  # The commit recorded in the JSON results, as benchmarks/CMakeLists.txt reads it (that file is
  # processed after tests/, so its VIT_GIT_HASH is not visible here).
  set(_emu_git_hash "unknown")
  find_package(Git QUIET)
  if(GIT_FOUND)
    execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                    OUTPUT_VARIABLE _h OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc ERROR_QUIET)
    if(_rc EQUAL 0 AND _h)
      set(_emu_git_hash ${_h})
    endif()
  endif()

  # bench_util + random_model on the emulator: vit-bench-emu and the unit tests of test_bench_emu.
  add_library(vit_bench_util_emu STATIC ${_bench_util_emu} ${_bench_src}/random_model.cpp)
  target_include_directories(vit_bench_util_emu PUBLIC ${_bench_src})
  target_link_libraries(vit_bench_util_emu PUBLIC vit_gpu_emu vit_model vit_core nlohmann_json::nlohmann_json)
  target_compile_definitions(vit_bench_util_emu PRIVATE VIT_GIT_HASH="${_emu_git_hash}")

  add_executable(vit-bench-emu ${_bench_src}/vit_bench.cpp)
  target_link_libraries(vit-bench-emu PRIVATE vit_bench_util_emu CLI11::CLI11)
  target_compile_options(vit-bench-emu PRIVATE ${VIT_WARNINGS})

  add_executable(vit-soak-emu ${_bench_src}/soak.cpp)
  # The emulator's cuda_runtime_api.h (declarations only; the definitions come from vit_emu_rt).
  target_include_directories(vit-soak-emu BEFORE PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/gpu_emu)
  target_include_directories(vit-soak-emu PRIVATE ${PROJECT_SOURCE_DIR}/src)  # core/precision.h
  target_link_libraries(vit-soak-emu PRIVATE vit_emu_rt nlohmann_json::nlohmann_json CLI11::CLI11)
  target_compile_definitions(vit-soak-emu PRIVATE VIT_WITH_CUDA=1 VIT_GIT_HASH="${_emu_git_hash}"
                                                  VIT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_compile_options(vit-soak-emu PRIVATE ${VIT_WARNINGS})

  # Not vit_add_test: the ctest names get the emulator's "emu." prefix (as in gpu.cmake).
  add_executable(test_bench_emu test_bench_emu.cpp cli_runner.cpp)
  target_link_libraries(test_bench_emu PRIVATE vit_bench_util_emu vit_test_util GTest::gtest_main)
  target_compile_definitions(test_bench_emu PRIVATE VIT_BENCH_EMU_BIN="$<TARGET_FILE:vit-bench-emu>"
                                                    VIT_SOAK_EMU_BIN="$<TARGET_FILE:vit-soak-emu>"
                                                    VIT_EMU_GIT_HASH="${_emu_git_hash}")
  add_dependencies(test_bench_emu vit-bench-emu vit-soak-emu)
  gtest_discover_tests(test_bench_emu TEST_PREFIX "emu." DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT 300 COST 50)  # COST: tests/CMakeLists.txt
endif()
