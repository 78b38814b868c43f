# Token merging (ToMe): tests/test_tome.cpp on the CPU engines and the C API (test_tome), on the
# CUDA engine (test_tome_cuda: skips without a device) and on the emulator (test_gpu_emu_tome,
# ctest "emu.Tome*": the one small fixture in fp32). Fixtures: tests/data/golden_tome
# (tools/make_golden_tome.py).
vit_add_test(test_tome test_tome.cpp model_fixture.cpp LIBS vit vit_cpu)
if(TARGET vit_gpu)
  vit_add_test(test_tome_cuda test_tome.cpp LIBS vit_gpu vit_cpu)
  target_compile_definitions(test_tome_cuda PRIVATE VIT_TEST_TOME_CUDA=1)
endif()
if(TARGET vit_gpu_emu)
  add_executable(test_gpu_emu_tome test_tome.cpp)
  target_compile_definitions(test_gpu_emu_tome PRIVATE VIT_TEST_TOME_CUDA=1)
  target_link_libraries(test_gpu_emu_tome PRIVATE vit_gpu_emu vit_test_util GTest::gtest_main)
  gtest_discover_tests(test_gpu_emu_tome TEST_PREFIX "emu." DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT 900 COST 50)  # COST: tests/CMakeLists.txt
endif()
