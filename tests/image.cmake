vit_add_test(test_image test_image.cpp LIBS vit_image vit_model)
