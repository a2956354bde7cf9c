/* Skill bundle unpacking (src/worker/skill_unpack.c): archives built here member by
 * member, unpacked into a temporary directory; what lands where, with which modes, and
 * what is refused (".." and absolute members, bad checksums, truncation) or dropped
 * (links). skill_remove_tree does not follow a link out of the tree. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "skill_unpack.h"

static void
member(struct buf *b, const char *name, char type, unsigned mode, const char *data, bool bad_sum)
{
	char h[512] = {0};
	size_t n = strlen(name), len = data ? strlen(data) : 0;
	if (n > 100) {
		const char *slash = strrchr(name, '/');
		memcpy(h + 345, name, (size_t)(slash - name));
		memcpy(h, slash + 1, strlen(slash + 1));
	} else {
		memcpy(h, name, n);
	}
	snprintf(h + 100, 8, "%07o", mode);
	snprintf(h + 108, 8, "%07o", 0);
	snprintf(h + 116, 8, "%07o", 0);
	snprintf(h + 124, 12, "%011zo", len);
	snprintf(h + 136, 12, "%011o", 0);
	h[156] = type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum + (bad_sum ? 1 : 0));
	h[155] = ' ';
	buf_add(b, h, 512);
	if (len) {
		buf_add(b, data, len);
		static const char zero[512];
		buf_add(b, zero, (512 - len % 512) % 512);
	}
}

static void
end(struct buf *b)
{
	static const char zero[1024];
	buf_add(b, zero, sizeof(zero));
}

static char tmp[64];

static int
setup(void **state)
{
	snprintf(tmp, sizeof(tmp), "/tmp/skill-unpack-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	return 0;
}

static int
teardown(void **state)
{
	skill_remove_tree(tmp);
	return 0;
}

static char *
slurp(const char *dir, const char *rel, unsigned *mode)
{
	static char out[256];
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (lstat(p, &st) != 0)
		return NULL;
	if (mode)
		*mode = st.st_mode & 07777;
	int fd = open(p, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, out, sizeof(out) - 1) : -1;
	if (fd >= 0)
		close(fd);
	out[n > 0 ? n : 0] = '\0';
	return out;
}

static void
test_unpack_strips_wrapper_and_sets_modes(void **state)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	member(&b, "csv-helper/", '5', 0755, NULL, false);
	member(&b, "csv-helper/SKILL.md", '0', 0600, "---\nname: x\n---\n", false);
	member(&b, "csv-helper/scripts/run.sh", '0', 0700, "echo hi\n", false);
	member(&b, "csv-helper/link", '2', 0777, NULL, false); /* a symlink: dropped */
	char *deep = NULL;
	{
		char name[200];
		memset(name, 'd', sizeof(name));
		memcpy(name, "csv-helper/", 11);
		name[120] = '/';
		name[199] = '\0';
		deep = strdup(name);
		member(&b, deep, '0', 0644, "deep", false);
	}
	end(&b);
	char dest[128];
	snprintf(dest, sizeof(dest), "%s/skill", tmp);
	const char *why = NULL;
	assert_int_equal(skill_unpack(b.data, b.len, dest, &why), 0);
	unsigned mode = 0;
	assert_string_equal(slurp(dest, "SKILL.md", &mode), "---\nname: x\n---\n");
	assert_int_equal(mode, 0644);
	assert_string_equal(slurp(dest, "scripts/run.sh", &mode), "echo hi\n");
	assert_int_equal(mode, 0755);
	assert_null(slurp(dest, "link", NULL));
	assert_string_equal(slurp(dest, deep + 11, NULL), "deep");
	/* dest must be new */
	assert_int_equal(skill_unpack(b.data, b.len, dest, &why), AL_E_IO);
	free(deep);
	buf_free(&b);
}

static void
test_unpack_keeps_layout_without_one_wrapper(void **state)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	member(&b, "a/x", '0', 0644, "1", false);
	member(&b, "b/y", '0', 0644, "2", false);
	end(&b);
	char dest[128];
	snprintf(dest, sizeof(dest), "%s/two", tmp);
	const char *why = NULL;
	assert_int_equal(skill_unpack(b.data, b.len, dest, &why), 0);
	assert_string_equal(slurp(dest, "a/x", NULL), "1");
	assert_string_equal(slurp(dest, "b/y", NULL), "2");
	buf_free(&b);
}

static void
test_refusals(void **state)
{
	static const struct {
		const char *name;
		char type;
		bool bad_sum;
		int want;
	} cases[] = {
	    {"w/../../etc/passwd", '0', false, AL_E_INVAL},
	    {"/etc/passwd", '0', false, AL_E_INVAL},
	    {"w/./x", '0', false, AL_E_INVAL},
	    {"w//x", '0', false, AL_E_INVAL},
	    {"w/x", '0', true, AL_E_INVAL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 1 << 20);
		member(&b, cases[i].name, cases[i].type, 0644, "x", cases[i].bad_sum);
		end(&b);
		char dest[128];
		snprintf(dest, sizeof(dest), "%s/bad%zu", tmp, i);
		const char *why = NULL;
		assert_int_equal(skill_unpack(b.data, b.len, dest, &why), cases[i].want);
		assert_non_null(why);
		/* refused before anything was written */
		struct stat st;
		assert_int_not_equal(lstat(dest, &st), 0);
		buf_free(&b);
	}
	/* truncated: a member past the end, and no end blocks */
	struct buf b;
	buf_init(&b, 1 << 20);
	member(&b, "w/x", '0', 0644, "0123456789", false);
	const char *why = NULL;
	assert_int_equal(skill_unpack(b.data, 512 + 4, "/nonexistent/x", &why), AL_E_INVAL);
	assert_int_equal(skill_unpack(b.data, b.len, "/nonexistent/x", &why), AL_E_INVAL);
	/* the same member twice: the second cannot replace the first */
	member(&b, "w/x", '0', 0644, "again", false);
	end(&b);
	char dest[128];
	snprintf(dest, sizeof(dest), "%s/twice", tmp);
	assert_int_equal(skill_unpack(b.data, b.len, dest, &why), AL_E_IO);
	assert_string_equal(slurp(dest, "x", NULL), "0123456789");
	buf_free(&b);
}

static void
test_remove_tree_stays_inside(void **state)
{
	char outside[128], tree[128], p[256];
	snprintf(outside, sizeof(outside), "%s/outside", tmp);
	snprintf(tree, sizeof(tree), "%s/tree", tmp);
	assert_int_equal(mkdir(outside, 0755), 0);
	snprintf(p, sizeof(p), "%s/keep", outside);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	assert_int_equal(mkdir(tree, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub", tree);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub/escape", tree);
	assert_int_equal(symlink(outside, p), 0);
	assert_int_equal(skill_remove_tree(tree), 0);
	struct stat st;
	assert_int_not_equal(lstat(tree, &st), 0);
	snprintf(p, sizeof(p), "%s/keep", outside);
	assert_int_equal(lstat(p, &st), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unpack_strips_wrapper_and_sets_modes),
	    cmocka_unit_test(test_unpack_keeps_layout_without_one_wrapper),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_remove_tree_stays_inside),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
