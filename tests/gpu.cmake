# GPU tests: built only with the CUDA engine. test_gpu_plan runs anywhere (no device needed);
# test_gpu_kernels / test_gpu_engine / test_gpu_engine_small GTEST_SKIP without a CUDA device.
if(TARGET vit_gpu)
  vit_add_test(test_gpu_plan test_gpu_plan.cpp model_fixture.cpp LIBS vit_gpu)
  vit_add_test(test_gpu_kernels test_gpu_kernels.cpp LIBS vit_gpu)
  vit_add_test(test_gpu_engine test_gpu_engine.cpp model_fixture.cpp LIBS vit_gpu vit_cpu)
  vit_add_test(test_gpu_engine_small test_gpu_engine_small.cpp model_fixture.cpp LIBS vit_gpu vit_cpu)
  vit_add_test(test_gpu_golden test_gpu_golden.cpp LIBS vit_gpu vit_cpu vit_golden_cases)
  target_include_directories(test_gpu_plan PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(test_gpu_kernels PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(test_gpu_engine PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(test_gpu_engine_small PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(test_gpu_golden PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
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
#   test_gpu_emu_golden  test_gpu_golden.cpp: every golden fixture, every precision
#   test_gpu_emu_engine  test_gpu_engine_small.cpp against the whole CudaEngine
#                        (src/gpu) on the emulated runtime: graph capture and
#                        replay, arena growth, a device-memory budget for out-of-memory, run_images
#                        through GpuPreprocessor, attention maps. cuBLASLt is not emulated
#                        (gpu_emu/lt_gemm_stub.cpp: every GEMM takes the custom kernels) unless
#                        VIT_EMU_CUBLASLT=1 (a host reference GEMM, for the agreement-check test).
#   test_gpu_emu_preprocess  test_gpu_preprocess.cpp: GpuPreprocessor (src/gpu/gpu_preprocess.cpp)
#                        and the resize kernels, bit for bit against the CPU path and the fixtures.
if(CMAKE_SYSTEM_NAME STREQUAL "Linux" AND TARGET vit_cpu)
  set(_emu_src)
  # The product's own lists (CMakeLists.txt: VIT_KERNEL_SRC, VIT_GPU_HOST_SRC): a kernel added
  # there is emulated without touching this file.
  foreach(_in ${VIT_KERNEL_SRC})
    get_filename_component(k ${_in} NAME_WE)
    set(_out ${CMAKE_CURRENT_BINARY_DIR}/gpu_emu_gen/${k}_emu.cpp)
    add_custom_command(OUTPUT ${_out}
                       COMMAND ${CMAKE_COMMAND} -DIN=${_in} -DOUT=${_out}
                               -P ${CMAKE_CURRENT_SOURCE_DIR}/gpu_emu/transform.cmake
                       DEPENDS ${_in} ${CMAKE_CURRENT_SOURCE_DIR}/gpu_emu/transform.cmake
                       COMMENT "gpu-emu: rewriting kernels/${k}.cu")
    list(APPEND _emu_src ${_out})
  endforeach()
  # vit_gpu_emu: the CUDA engine (src/gpu) and the shipped kernels compiled once against the
  # emulator's headers (they must shadow the real cuda_runtime_api.h / cublasLt.h /
  # device_common.cuh, hence BEFORE), shared by every emulated target below.
  set(_emu_host ${VIT_GPU_HOST_SRC})
  list(FILTER _emu_host EXCLUDE REGEX "/lt_gemm\\.cpp$")  # cuBLASLt: gpu_emu/lt_gemm_stub.cpp
  add_library(vit_gpu_emu STATIC gpu_emu/emu.cpp gpu_emu/lt_gemm_stub.cpp ${_emu_host} ${_emu_src})
  target_include_directories(vit_gpu_emu BEFORE PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/gpu_emu
                             ${PROJECT_SOURCE_DIR}/kernels ${CMAKE_CURRENT_SOURCE_DIR})
  # The emulator runs the Hopper kernel's body (VIT_HAVE_SM90A: a 9.0 emulated device must run it).
  target_compile_definitions(vit_gpu_emu PUBLIC VIT_GPU_EMU_BUILD=1 VIT_WITH_CUDA=1 VIT_HAVE_SM90A=1)
  target_link_libraries(vit_gpu_emu PUBLIC vit_cpu)

  # Not vit_add_test: the test names equal test_gpu_kernels', so ctest gets them prefixed "emu.".
  add_executable(test_gpu_emu test_gpu_kernels.cpp)
  add_executable(test_gpu_emu_engine test_gpu_engine_small.cpp model_fixture.cpp)
  add_executable(test_gpu_emu_golden test_gpu_golden.cpp)
  add_executable(test_gpu_emu_preprocess test_gpu_preprocess.cpp)
  target_link_libraries(test_gpu_emu_preprocess PRIVATE vit_image)
  foreach(t test_gpu_emu test_gpu_emu_engine test_gpu_emu_golden test_gpu_emu_preprocess)
    target_link_libraries(${t} PRIVATE vit_gpu_emu vit_test_util vit_golden_cases GTest::gtest_main)
    gtest_discover_tests(${t} TEST_PREFIX "emu." DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                         PROPERTIES TIMEOUT 900 COST 50)  # COST: tests/CMakeLists.txt
  endforeach()

  # Only with VIT_TEST_EMU_PROGRAMS (tests/CMakeLists.txt; the sanitizer build leaves them out).
  if(VIT_TEST_EMU_PROGRAMS)
    # vit_emu_rt: the shipped C API (src/api) linked with the emulated engine, as a shared library
    # exporting vit_* AND the emulated CUDA runtime (cuda*): programs that call cudaMemGetInfo /
    # cudaGetDeviceProperties themselves (vit-soak) must reach the same emulated device the session
    # allocates on, not a second copy of the runtime linked into the program.
    # vit-infer-emu: the shipped program (src/cli) on it, so `vit-infer-emu classify --device cuda`
    # runs the whole CUDA path of the product, argument to output, on the CPU (test_cli_cuda.cpp).
    file(GLOB _emu_rt_api_src ${PROJECT_SOURCE_DIR}/src/api/*.cpp)
    set(_emu_rt_map ${CMAKE_CURRENT_BINARY_DIR}/gpu_emu_gen/vit_emu_rt.map)
    file(WRITE ${_emu_rt_map}.in
         "/* vit_emu_rt (tests/gpu.cmake): the C API and the emulated CUDA runtime. */\n"
         "{\n  global:\n    vit_*;\n    extern \"C++\" { cuda*; };\n  local: *;\n};\n")
    configure_file(${_emu_rt_map}.in ${_emu_rt_map} COPYONLY)  # rewritten only when it changes
    add_library(vit_emu_rt SHARED ${_emu_rt_api_src})
    target_include_directories(vit_emu_rt PUBLIC ${PROJECT_SOURCE_DIR}/include)
    target_link_libraries(vit_emu_rt PRIVATE vit_gpu_emu vit_image)
    set_target_properties(vit_emu_rt PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
    target_link_options(vit_emu_rt PRIVATE "LINKER:--version-script=${_emu_rt_map}")
    set_property(TARGET vit_emu_rt APPEND PROPERTY LINK_DEPENDS ${_emu_rt_map})
    file(GLOB _cli_src ${PROJECT_SOURCE_DIR}/src/cli/*.cpp)
    add_executable(vit-infer-emu ${_cli_src})
    target_link_libraries(vit-infer-emu PRIVATE vit_emu_rt vit_core vit_image CLI11::CLI11)
    target_compile_definitions(vit-infer-emu PRIVATE VIT_INSTALL_DATADIR="${PROJECT_SOURCE_DIR}")
  endif()
endif()

# `vit-infer classify --device cuda` on every golden fixture, every precision, vs the CPU path:
# with the real program when it is built with CUDA (skips without a device), and with
# vit-infer-emu (the CPU emulator) in every build.
if(TARGET vit_gpu)
  vit_add_test(test_cli_cuda test_cli_cuda.cpp cli_runner.cpp LIBS vit_golden_cases)
  target_compile_definitions(test_cli_cuda PRIVATE VIT_INFER_BIN="$<TARGET_FILE:vit-infer>")
  add_dependencies(test_cli_cuda vit-infer)
endif()
if(TARGET vit-infer-emu)
  add_executable(test_cli_cuda_emu test_cli_cuda.cpp cli_runner.cpp)
  target_link_libraries(test_cli_cuda_emu PRIVATE vit_golden_cases vit_test_util GTest::gtest_main)
  target_compile_definitions(test_cli_cuda_emu PRIVATE VIT_INFER_BIN="$<TARGET_FILE:vit-infer-emu>"
                             VIT_CLI_CUDA_EMULATED=1)
  add_dependencies(test_cli_cuda_emu vit-infer-emu)
  gtest_discover_tests(test_cli_cuda_emu TEST_PREFIX "emu." DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT 900 COST 50)  # COST: tests/CMakeLists.txt
endif()

# sass.*: the shipped library (libvit) carries a Hopper GEMM that can run: an sm_90a cubin with
# HGMMA in every wgmma kernel, and no sm_90 cubin / PTX of it beside (tools/check_sass.sh). No
# GPU needed; cuobjdump + nvdisasm from the toolkit or from scripts/setup.sh's .venv-tools. It
# skips (with the reason) only in a build without CUDA.
if(TARGET vit_gpu)
  add_test(NAME sass.ShippedLibraryHasHgmma COMMAND bash ${PROJECT_SOURCE_DIR}/tools/check_sass.sh $<TARGET_FILE:vit>)
else()
  add_test(NAME sass.ShippedLibraryHasHgmma COMMAND bash ${PROJECT_SOURCE_DIR}/tools/check_sass.sh --no-cuda)
endif()
set_tests_properties(sass.ShippedLibraryHasHgmma PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
