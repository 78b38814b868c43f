vit_add_test(test_io test_safetensors.cpp test_npy.cpp LIBS vit_core)
