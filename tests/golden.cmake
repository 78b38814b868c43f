# The golden fixtures (golden_cases.h), read by the CPU, CUDA and CLI golden tests, and which of
# them the emulator runs whole (emulated_runs.h: one run per family and precision).
add_library(vit_golden_cases STATIC golden_cases.cpp emulated_runs.cpp)
target_link_libraries(vit_golden_cases PUBLIC vit_test_util vit_model vit_engine)
vit_add_test(test_golden test_golden.cpp LIBS vit_cpu vit_golden_cases)
