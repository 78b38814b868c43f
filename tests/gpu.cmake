# GPU tests: built only with the CUDA engine. test_gpu_plan runs anywhere (no device needed);
# test_gpu_kernels / test_gpu_engine / test_gpu_engine_small GTEST_SKIP without a CUDA device.
if(TARGET vit_gpu)
  vit_add_test(test_gpu_plan test_gpu_plan.cpp model_fixture.cpp LIBS vit_gpu)
  vit_add_test(test_gpu_kernels test_gpu_kernels.cpp LIBS vit_gpu)
  vit_add_test(test_gpu_engine test_gpu_engine.cpp model_fixture.cpp LIBS vit_gpu vit_cpu)
  vit_add_test(test_gpu_engine_small test_gpu_engine_small.cpp model_fixture.cpp LIBS vit_gpu vit_cpu)
  target_include_directories(test_gpu_plan PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(test_gpu_kernels PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(test_gpu_engine PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(test_gpu_engine_small PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
endif()

# The CPU emulator (gpu_emu/): the shipped kernels (kernels/*.cu, launch syntax rewritten by
# gpu_emu/transform.cmake) run on the CPU by a fiber emulator. Needs neither nvcc nor a GPU, so
# it runs in every build; ctest names are prefixed "emu.". It checks indexing, fragment layouts
# (mma.sync / ldmatrix from the PTX ISA tables), cp.async group ordering, 16-byte alignment of
# every cp.async / ldmatrix address and barrier convergence, and the Hopper GEMM's sm_90 machinery
# (kernels/gemm_sm90.cu: wgmma descriptors / 128B swizzle / accumulator fragment, TMA tile loads,
# mbarrier phases; the emulator reports compute capability 9.0, VIT_EMU_CC=80 hides it); it
# cannot see timing, register pressure or hardware-only races.
#   test_gpu_emu         test_gpu_kernels.cpp against the emulated kernels
#   test_gpu_emu_engine  test_gpu_engine_small.cpp against the whole CudaEngine
#                        (src/gpu/cuda_engine.cpp) on the emulated runtime: graph capture and
#                        replay, arena growth, a device-memory budget for out-of-memory, run_images
#                        through GpuPreprocessor, attention maps. cuBLASLt is not emulated
#                        (gpu_emu/lt_gemm_stub.cpp: every GEMM takes the custom kernels) unless
#                        VIT_EMU_CUBLASLT=1 (a host reference GEMM, for the agreement-check test).
if(CMAKE_SYSTEM_NAME STREQUAL "Linux" AND TARGET vit_cpu)
  set(_emu_src)
  foreach(k gemm gemm_sm90 attention layernorm head patch_embed resize_normalize)
    set(_in ${PROJECT_SOURCE_DIR}/kernels/${k}.cu)
    set(_out ${CMAKE_CURRENT_BINARY_DIR}/gpu_emu_gen/${k}_emu.cpp)
    add_custom_command(OUTPUT ${_out}
                       COMMAND ${CMAKE_COMMAND} -DIN=${_in} -DOUT=${_out}
                               -P ${CMAKE_CURRENT_SOURCE_DIR}/gpu_emu/transform.cmake
                       DEPENDS ${_in} ${CMAKE_CURRENT_SOURCE_DIR}/gpu_emu/transform.cmake
                       COMMENT "gpu-emu: rewriting kernels/${k}.cu")
    list(APPEND _emu_src ${_out})
  endforeach()
  set(_emu_kernels ${_emu_src})
  list(REMOVE_ITEM _emu_kernels ${CMAKE_CURRENT_BINARY_DIR}/gpu_emu_gen/resize_normalize_emu.cpp)

  # Not vit_add_test: the test names equal test_gpu_kernels', so ctest gets them prefixed "emu.".
  add_executable(test_gpu_emu test_gpu_kernels.cpp gpu_emu/emu.cpp ${_emu_kernels})
  target_link_libraries(test_gpu_emu PRIVATE vit_test_util GTest::gtest_main)
  gtest_discover_tests(test_gpu_emu TEST_PREFIX "emu." DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT 900)

  add_executable(test_gpu_emu_engine test_gpu_engine_small.cpp model_fixture.cpp gpu_emu/emu.cpp
                 gpu_emu/lt_gemm_stub.cpp ${PROJECT_SOURCE_DIR}/src/gpu/cuda_engine.cpp
                 ${PROJECT_SOURCE_DIR}/src/gpu/arena.cpp ${_emu_src})
  target_link_libraries(test_gpu_emu_engine PRIVATE vit_test_util GTest::gtest_main vit_cpu)
  gtest_discover_tests(test_gpu_emu_engine TEST_PREFIX "emu." DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT 900)

  foreach(t test_gpu_emu test_gpu_emu_engine)
    # The emulator's cuda_runtime_api.h / cublasLt.h / device_common.cuh must shadow the real ones.
    target_include_directories(${t} BEFORE PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/gpu_emu
                               ${PROJECT_SOURCE_DIR}/kernels ${CMAKE_CURRENT_SOURCE_DIR})
    target_compile_definitions(${t} PRIVATE VIT_GPU_EMU_BUILD=1)
  endforeach()
endif()
