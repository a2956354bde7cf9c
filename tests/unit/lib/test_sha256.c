/* lib/sha256 against the FIPS 180-4 examples and against OpenSSL for every length
 * around the block and padding boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "sha256.h"
#include "util.h"

static void
test_vectors(void **state)
{
	char hex[65];
	sha256_hex("abc", 3, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_hex("", 0, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	sha256_hex(m, strlen(m), hex);
	assert_string_equal(hex,
	                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void
test_against_openssl(void **state)
{
	uint8_t in[300], a[SHA256_LEN], b[SHA256_DIGEST_LENGTH];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 131 + 7);
	for (size_t n = 0; n <= sizeof(in); n++) {
		sha256(in, n, a);
		SHA256(in, n, b);
		assert_memory_equal(a, b, SHA256_LEN);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_against_openssl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
