vit_add_test(test_image test_image.cpp LIBS vit_image vit_model)
vit_add_test(test_hf_processors test_hf_processors.cpp LIBS vit_image vit_model)
