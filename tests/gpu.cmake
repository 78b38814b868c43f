# GPU tests: built only with the CUDA engine. test_gpu_plan runs anywhere (no device needed);
# test_gpu_kernels / test_gpu_engine GTEST_SKIP without a CUDA device.
if(TARGET vit_gpu)
  vit_add_test(test_gpu_plan test_gpu_plan.cpp model_fixture.cpp LIBS vit_gpu)
  vit_add_test(test_gpu_kernels test_gpu_kernels.cpp LIBS vit_gpu)
  vit_add_test(test_gpu_engine test_gpu_engine.cpp model_fixture.cpp LIBS vit_gpu vit_cpu)
  target_include_directories(test_gpu_plan PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(test_gpu_kernels PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(test_gpu_engine PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
endif()
