vit_add_test(test_golden test_golden.cpp LIBS vit_cpu)
