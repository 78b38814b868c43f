# GPU image preprocessing (kernels/resize_normalize.cu) against the CPU path. Built only with
# the CUDA engine; the device tests GTEST_SKIP without a CUDA device, the argument checks run anywhere.
if(TARGET vit_gpu AND TARGET vit_image)
  vit_add_test(test_gpu_preprocess test_gpu_preprocess.cpp LIBS vit_gpu vit_image)
  target_include_directories(test_gpu_preprocess PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
endif()
