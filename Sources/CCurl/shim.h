#include <curl/curl.h>

/* Swift cannot call a C function through `...`: curl_easy_setopt, curl_easy_getinfo and
 * curl_multi_setopt take their value that way, its type chosen by the option. Each wrapper below
 * fixes one value type, so Swift calls it like any other C function; nothing else is done here. */

/* curl_easy_setopt with a `long` (flags, timeouts, sizes that fit a long). Variadic in C. */
static inline CURLcode cordon_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

/* curl_easy_setopt with a `curl_off_t` (the *_LARGE options). Variadic in C. */
static inline CURLcode cordon_curl_easy_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/* curl_easy_setopt with a string (curl copies it, except for CURLOPT_POSTFIELDS). Variadic in C. */
static inline CURLcode cordon_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

/* curl_easy_setopt with a pointer (callback data, the error buffer, a header list). Variadic in C. */
static inline CURLcode cordon_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

/* curl_easy_setopt with a write or header callback (both have curl_write_callback's type).
 * Variadic in C: a function pointer passed through `...` must have exactly the type curl reads. */
static inline CURLcode cordon_curl_easy_setopt_write_callback(CURL *handle, CURLoption option, curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/* curl_easy_getinfo for a `long` result (the status, the number of connections made). Variadic in C. */
static inline CURLcode cordon_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

/* curl_easy_getinfo for a `curl_off_t` result (the *_T times, in microseconds). Variadic in C. */
static inline CURLcode cordon_curl_easy_getinfo_off(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

/* curl_easy_getinfo for a pointer result (CURLINFO_PRIVATE). Variadic in C. */
static inline CURLcode cordon_curl_easy_getinfo_pointer(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}

/* curl_multi_setopt with a `long` (connection cache size, per-host limits). Variadic in C. */
static inline CURLMcode cordon_curl_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}

/* CURLVERSION_NOW is a macro (Swift cannot read it): whether this libcurl speaks HTTP/2. */
static inline int cordon_curl_has_http2(void) {
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    return info != NULL && (info->features & CURL_VERSION_HTTP2) != 0;
}
