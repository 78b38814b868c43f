# The declarative op table (op_cases.h) on every backend present, against the CPU reference rows:
# test_ops (the fast CPU engine's rows, fp32 / bf16), test_ops_cuda (the CUDA rows on a device;
# skipped without one) and test_gpu_emu_ops (the same rows in the CPU emulator, ctest "emu.Ops*").
# vit-kernels-bench times the table's perf cases (benchmarks/CMakeLists.txt compiles op_cases.cpp).
add_library(vit_op_cases STATIC op_cases.cpp)
target_link_libraries(vit_op_cases PUBLIC vit_graph)
target_include_directories(vit_op_cases PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
vit_add_test(test_ops test_ops.cpp LIBS vit_cpu vit_op_cases)
if(TARGET vit_gpu)
  vit_add_test(test_ops_cuda test_ops.cpp LIBS vit_gpu vit_cpu vit_op_cases)
  target_compile_definitions(test_ops_cuda PRIVATE VIT_TEST_OPS_CUDA=1)
endif()
if(TARGET vit_gpu_emu)
  add_executable(test_gpu_emu_ops test_ops.cpp)
  target_compile_definitions(test_gpu_emu_ops PRIVATE VIT_TEST_OPS_CUDA=1)
  target_link_libraries(test_gpu_emu_ops PRIVATE vit_gpu_emu vit_test_util vit_op_cases GTest::gtest_main)
  gtest_discover_tests(test_gpu_emu_ops TEST_PREFIX "emu." DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT 900 COST 50)  # COST: tests/CMakeLists.txt
endif()
