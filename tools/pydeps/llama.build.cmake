# Included at the end of llama.cpp's project() call (CMAKE_PROJECT_llama.cpp_INCLUDE in
# llama.build): llama-cpp-python's CMakeLists.txt forces LLAMA_BUILD_COMMON on, but its Python
# package loads only libllama and libggml*; llama.cpp's common library (chat parsers, argument
# parsing, an HTTP client) was half of the build's compile time and is never loaded.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
