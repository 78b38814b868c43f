vit_add_test(test_model test_config.cpp test_loader.cpp test_resample.cpp LIBS vit_model)
