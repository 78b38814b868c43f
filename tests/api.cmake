vit_add_test(test_api test_api.cpp model_fixture.cpp LIBS vit vit_cpu)
