vit_add_test(test_cpu test_cpu_engine.cpp model_fixture.cpp LIBS vit_cpu)
vit_add_test(test_graph test_graph.cpp model_fixture.cpp LIBS vit_graph)
