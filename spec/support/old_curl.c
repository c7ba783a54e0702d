/*
 * old_curl.c: an LD_PRELOAD shim for spec/15: curl_version_info says libcurl 7.60.0 (older
 * than curl_multi_poll, which cptokens.core calls), so that the module's check of the
 * libcurl it runs with can be seen to refuse it. Everything else is the real libcurl.
 */
#include <curl/curl.h>

curl_version_info_data *curl_version_info(CURLversion age) {
  static curl_version_info_data old;
  (void)age;
  old.age = CURLVERSION_FIRST;
  old.version = "7.60.0";
  old.version_num = 0x073c00;
  old.host = "x86_64-pc-linux-gnu";
  return &old;
}
