/* The read, write and edit tools: confined, capped, and atomic, with the SDK's texts. Every
 * file is opened beneath its root (tools_path.c), never by a path string. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "tools_int.h"
#include "xalloc.h"

#define READ_CHUNK 65536

/* Opens canon for reading only if it is a regular file: an O_PATH open and fstat first,
 * because opening a FIFO or device can block or have side effects. Returns the fd, -errno,
 * or AL_E_INVAL for "not a regular file". */
static int
open_regular(struct tool_ctx *ctx, const char *canon, struct stat *st)
{
	struct stat st2;
	int pfd = tool_path_open(ctx, canon, O_PATH, 0);
	if (pfd < 0)
		return pfd;
	int r = fstat(pfd, st) != 0 ? -errno : 0;
	close(pfd);
	if (r != 0)
		return r;
	if (!S_ISREG(st->st_mode))
		return AL_E_INVAL;
	int fd = tool_path_open(ctx, canon, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0)
		return fd;
	/* Same inode as the one checked, or a swap happened in between. */
	if (fstat(fd, &st2) != 0 || !S_ISREG(st2.st_mode) || st2.st_ino != st->st_ino ||
	    st2.st_dev != st->st_dev) {
		close(fd);
		return AL_E_INVAL;
	}
	*st = st2;
	return fd;
}

/* Reads at most max bytes; *over is set when the file holds more. */
static int
read_capped(int fd, struct buf *out, uint64_t max, bool *over)
{
	char chunk[READ_CHUNK];
	*over = false;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (out->len + (uint64_t)n > max) {
			*over = true;
			return 0;
		}
		int r = buf_add(out, chunk, (size_t)n);
		if (r != 0)
			return r;
	}
}

/* lines.slice(start, end).join('\n') over data.split('\n'). */
static void
slice_lines(struct buf *out, const char *data, size_t len, int64_t start_line, int64_t end_line)
{
	/* compare before subtracting: start_line - 1 overflows at INT64_MIN */
	int64_t start = start_line > 1 ? start_line - 1 : 0;
	int64_t idx = 0;
	size_t p = 0;
	bool first = true;
	for (;;) {
		const char *nl = memchr(data + p, '\n', len - p);
		size_t e = nl != NULL ? (size_t)(nl - data) : len;
		if (end_line > 0 && idx >= end_line)
			break;
		if (idx >= start) {
			if (!first)
				(void)buf_add(out, "\n", 1);
			(void)buf_add(out, data + p, e - p);
			first = false;
		}
		if (nl == NULL)
			break;
		p = e + 1;
		idx++;
	}
}

/* The SDK's LineRangeCollector: streams a file larger than the cap and returns the selected
 * lines, erroring once the selection itself exceeds the cap. */
static void
read_range_streaming(int fd, const char *file_path, int64_t start_line, int64_t end_line,
                     uint64_t limit, struct tool_res *res)
{
	int64_t start = start_line > 1 ? start_line - 1 : 0; /* no overflow at INT64_MIN */
	int64_t end = end_line > 0 ? end_line : INT64_MAX;
	int64_t line = 0;
	struct buf *out = &res->text;
	char chunk[READ_CHUNK];

	if (end <= start)
		return;
	while (line < end) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf_reset(out);
			res->is_error = true;
			(void)buf_add_str(out, "read: ");
			tool_path_errtext(out, -errno, file_path);
			return;
		}
		if (n == 0)
			break;
		size_t ls = 0;
		while (ls < (size_t)n && line < end) {
			const char *nl = memchr(chunk + ls, '\n', (size_t)n - ls);
			size_t le = nl != NULL ? (size_t)(nl - chunk) : (size_t)n;
			if (line >= start) {
				bool add_nl = nl != NULL && line + 1 < end;
				if (out->len + (le - ls) + (add_nl ? 1 : 0) > limit) {
					if (end - start == 1)
						tool_fail(res,
						          "read: line %lld of %s alone exceeds "
						          "%llu-byte limit. "
						          "The read tool cannot return part of a "
						          "line, so "
						          "view_range cannot narrow this further.",
						          (long long)start + 1, file_path,
						          (unsigned long long)limit);
					else
						tool_fail(
						    res,
						    "read: view_range [%lld, %lld] of %s exceeds "
						    "%llu-byte limit. Narrow the view_range to "
						    "read a "
						    "smaller portion.",
						    (long long)start_line, (long long)end_line,
						    file_path, (unsigned long long)limit);
					return;
				}
				(void)buf_add(out, chunk + ls, le - ls);
				if (add_nl)
					(void)buf_add(out, "\n", 1);
			}
			if (nl == NULL)
				break;
			line++;
			ls = le + 1;
		}
	}
}

static void
fail_fs(struct tool_res *res, const char *tool, const char *what, int err, const char *file)
{
	buf_reset(&res->text);
	res->is_error = true;
	(void)buf_addf(&res->text, "%s: %s", tool, what);
	tool_path_errtext(&res->text, err, file);
}

void
tool_read_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res)
{
	const char *file_path = tool_in_str(in, "file_path");
	const json_t *vr = json_object_get(in, "view_range");
	size_t vr_len = json_is_array(vr) ? json_array_size(vr) : 0;
	char *canon = NULL;
	struct stat st;
	struct buf data;
	bool over;
	int fd = -1, r;

	buf_init(&data, ctx->max_file + 1);
	if (tool_path_resolve(ctx, file_path, &canon, res) != 0)
		goto out;
	if (vr_len != 0 && vr_len != 2) {
		tool_fail(res, "read: view_range must be [start_line, end_line]");
		goto out;
	}
	int64_t s = 0, e = 0;
	if (vr_len == 2) {
		json_t *a = json_array_get(vr, 0), *b = json_array_get(vr, 1);
		s = json_is_integer(a) ? json_integer_value(a) : (int64_t)json_number_value(a);
		e = json_is_integer(b) ? json_integer_value(b) : (int64_t)json_number_value(b);
	}
	if ((fd = open_regular(ctx, canon, &st)) == AL_E_INVAL) {
		tool_fail(res, "read: %s is not a regular file", file_path);
		goto out;
	}
	if (fd < 0) {
		fail_fs(res, "read", "", fd, file_path);
		goto out;
	}
	if ((uint64_t)st.st_size > ctx->max_file) {
		if (vr_len == 0) {
			tool_fail(
			    res,
			    "read: %s is %lld bytes, exceeds %llu-byte limit. Use the view_range "
			    "parameter to read specific line ranges, e.g. view_range: [1, 500].",
			    file_path, (long long)st.st_size, (unsigned long long)ctx->max_file);
			goto out;
		}
		read_range_streaming(fd, file_path, s, e, ctx->max_file, res);
		goto out;
	}
	if ((r = read_capped(fd, &data, ctx->max_file, &over)) != 0) {
		fail_fs(res, "read", "", r, file_path);
		goto out;
	}
	if (over) {
		/* Grew past the cap since the fstat: treat it as the large file it now is. */
		if (lseek(fd, 0, SEEK_SET) != 0 || vr_len == 0) {
			tool_fail(res,
			          "read: %s exceeds %llu-byte limit. Use the view_range parameter "
			          "to read specific line ranges, e.g. view_range: [1, 500].",
			          file_path, (unsigned long long)ctx->max_file);
			goto out;
		}
		read_range_streaming(fd, file_path, s, e, ctx->max_file, res);
		goto out;
	}
	if (vr_len != 0)
		slice_lines(&res->text, data.data != NULL ? data.data : "", data.len, s, e);
	else if (data.len > 0)
		(void)buf_add(&res->text, data.data, data.len);
out:
	if (fd >= 0)
		close(fd);
	free(canon);
	buf_free(&data);
}

void
tool_write_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res)
{
	const char *file_path = tool_in_str(in, "file_path");
	const json_t *cv = json_object_get(in, "content");
	const char *content = json_string_value(cv);
	size_t len = json_string_length(cv);
	const struct tool_root *ro;
	const char *leaf;
	char *canon = NULL;
	int dirfd = -1, r;

	if (tool_path_resolve(ctx, file_path, &canon, res) != 0)
		goto out;
	if ((ro = tool_path_ro_root(ctx, canon)) != NULL) {
		tool_fail(res, "write: %s is inside read-only directory %s", file_path, ro->cfg);
		goto out;
	}
	if ((dirfd = tool_path_open_parent(ctx, canon, true, &leaf)) < 0) {
		fail_fs(res, "write", "", dirfd, file_path);
		goto out;
	}
	if ((r = tool_path_write_atomic(dirfd, leaf, content, len)) != 0) {
		fail_fs(res, "write", "", r, file_path);
		goto out;
	}
	(void)buf_addf(&res->text, "wrote %zu bytes to %s", len, file_path);
out:
	if (dirfd >= 0)
		close(dirfd);
	free(canon);
}

/* Counts non-overlapping occurrences, left to right (String.prototype.split). */
static size_t
count_occ(const char *h, size_t hl, const char *n, size_t nl)
{
	size_t c = 0, p = 0;
	while (p + nl <= hl) {
		const char *m = memmem(h + p, hl - p, n, nl);
		if (m == NULL)
			break;
		c++;
		p = (size_t)(m - h) + nl;
	}
	return c;
}

void
tool_edit_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res)
{
	const char *file_path = tool_in_str(in, "file_path");
	const json_t *ov = json_object_get(in, "old_string"),
	             *nv = json_object_get(in, "new_string");
	const char *old = json_string_value(ov), *new = json_string_value(nv);
	size_t ol = json_string_length(ov), nl = json_string_length(nv);
	bool all = tool_in_bool(in, "replace_all");
	const struct tool_root *ro;
	const char *leaf;
	char *canon = NULL;
	struct stat st;
	struct buf data, upd;
	bool over;
	int fd = -1, dirfd = -1, r;

	buf_init(&data, ctx->max_file + 1);
	buf_init(&upd, 1u << 30);
	if (tool_path_resolve(ctx, file_path, &canon, res) != 0)
		goto out;
	if ((ro = tool_path_ro_root(ctx, canon)) != NULL) {
		tool_fail(res, "edit: %s is inside read-only directory %s", file_path, ro->cfg);
		goto out;
	}
	if ((fd = open_regular(ctx, canon, &st)) == AL_E_INVAL) {
		tool_fail(res, "edit: %s is not a regular file", file_path);
		goto out;
	}
	if (fd < 0) {
		fail_fs(res, "edit", "", fd, file_path);
		goto out;
	}
	if ((uint64_t)st.st_size > ctx->max_file) {
		tool_fail(
		    res,
		    "edit: %s is %lld bytes, exceeds %llu-byte limit. The edit tool loads the "
		    "whole file and cannot modify a file this large.",
		    file_path, (long long)st.st_size, (unsigned long long)ctx->max_file);
		goto out;
	}
	if ((r = read_capped(fd, &data, ctx->max_file, &over)) != 0 || over) {
		if (over)
			tool_fail(res,
			          "edit: %s exceeds %llu-byte limit. The edit tool loads the "
			          "whole file and cannot modify a file this large.",
			          file_path, (unsigned long long)ctx->max_file);
		else
			fail_fs(res, "edit", "", r, file_path);
		goto out;
	}
	const char *d = data.data != NULL ? data.data : "";
	size_t count = count_occ(d, data.len, old, ol);
	if (count == 0) {
		tool_fail(res, "edit: old_string not found in %s", file_path);
		goto out;
	}
	if (!all && count > 1) {
		tool_fail(res, "edit: old_string appears %zu times in %s (must be unique)", count,
		          file_path);
		goto out;
	}
	/* Exact bytes: no normalization, and "$&" in new_string is literal. */
	size_t p = 0, done = 0;
	while (done < (all ? count : 1)) {
		const char *m = memmem(d + p, data.len - p, old, ol);
		if (buf_add(&upd, d + p, (size_t)(m - (d + p))) != 0 ||
		    buf_add(&upd, new, nl) != 0) {
			tool_fail(res, "edit: result too large");
			goto out;
		}
		p = (size_t)(m - d) + ol;
		done++;
	}
	if (buf_add(&upd, d + p, data.len - p) != 0) {
		tool_fail(res, "edit: result too large");
		goto out;
	}
	if ((dirfd = tool_path_open_parent(ctx, canon, false, &leaf)) < 0) {
		fail_fs(res, "edit", "write: ", dirfd, file_path);
		goto out;
	}
	if ((r = tool_path_write_atomic(dirfd, leaf, upd.data != NULL ? upd.data : "", upd.len)) !=
	    0) {
		fail_fs(res, "edit", "write: ", r, file_path);
		goto out;
	}
	(void)buf_addf(&res->text, "edited %s (%zu replacement(s))", file_path, all ? count : 1);
out:
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	free(canon);
	buf_free(&data);
	buf_free(&upd);
}
