/* Skill bundle rules: paths, SKILL.md front matter, ustar headers; see skill_bundle.h. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "skill_bundle.h"

const char *
skill_path_error(const char *path)
{
	size_t n = strlen(path), segs = 0;
	if (n == 0 || n > SKILL_MAX_PATH)
		return "files: each path must be 1 to 255 bytes";
	if (path[0] == '/')
		return "files: paths must be relative (no leading '/')";
	for (const char *p = path; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch < 0x20 || ch == 0x7f)
			return "files: control characters are not allowed in paths";
		if (ch == '\\')
			return "files: backslashes are not allowed in paths";
	}
	json_t *j = json_string(path); /* NULL on invalid UTF-8 */
	if (j == NULL)
		return "files: paths must be UTF-8";
	json_decref(j);
	for (const char *s = path;;) {
		const char *e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == 0)
			return "files: empty path segments are not allowed";
		if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
			return "files: '.' and '..' are not allowed in paths";
		if (++segs > SKILL_MAX_DEPTH)
			return "files: paths may have at most 16 segments";
		if (e == NULL)
			break;
		s = e + 1;
	}
	if (segs < 2)
		return "files: every file must be inside the skill's top-level directory";
	return NULL;
}

static const char *
fm_value(const char *v, size_t vlen, char *out, size_t outsz, size_t *outlen)
{
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t' || v[vlen - 1] == '\r'))
		vlen--;
	if (vlen >= 2 &&
	    ((v[0] == '"' && v[vlen - 1] == '"') || (v[0] == '\'' && v[vlen - 1] == '\''))) {
		v++;
		vlen -= 2;
	}
	if (*outlen + vlen + (*outlen ? 1 : 0) >= outsz)
		return "too long";
	if (*outlen && vlen)
		out[(*outlen)++] = ' ';
	memcpy(out + *outlen, v, vlen);
	*outlen += vlen;
	out[*outlen] = '\0';
	return NULL;
}

int
skill_front_matter(const char *text, size_t len, struct skill_meta *out, const char **why)
{
	const char *p = text, *end = text + len;
	size_t nlen = 0, dlen = 0;
	char *cur = NULL; /* the value an indented line continues */
	size_t *curlen = NULL, cursz = 0;
	bool closed = false;
	memset(out, 0, sizeof(*out));
	if (memchr(text, '\0', len) != NULL) {
		*why = "SKILL.md: NUL bytes are not allowed";
		return AL_E_INVAL;
	}
	if (len < 4 || memcmp(p, "---", 3) != 0 || (p[3] != '\n' && p[3] != '\r')) {
		*why = "SKILL.md: must start with YAML front matter (a '---' line)";
		return AL_E_INVAL;
	}
	p = memchr(p, '\n', (size_t)(end - p));
	p = p ? p + 1 : end;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t ll = (size_t)(le - p);
		if (ll && p[ll - 1] == '\r')
			ll--;
		if (ll == 3 && memcmp(p, "---", 3) == 0) {
			closed = true;
			break;
		}
		if (ll && (p[0] == ' ' || p[0] == '\t')) {
			if (cur && fm_value(p, ll, cur, cursz, curlen) != NULL) {
				*why = "SKILL.md: a front matter value is too long";
				return AL_E_INVAL;
			}
		} else if (ll && p[0] != '#') {
			const char *colon = memchr(p, ':', ll);
			cur = NULL;
			if (colon == NULL) {
				*why = "SKILL.md: front matter lines must be 'key: value'";
				return AL_E_INVAL;
			}
			size_t kl = (size_t)(colon - p);
			const char *v = colon + 1;
			size_t vl = ll - kl - 1;
			/* a block scalar marker (">", "|", with "-" or "+"): the value is on the
			 * indented lines below */
			const char *t = v;
			size_t tl = vl;
			while (tl && (*t == ' ' || *t == '\t'))
				t++, tl--;
			while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
				tl--;
			if ((tl == 1 || (tl == 2 && (t[1] == '-' || t[1] == '+'))) &&
			    (t[0] == '>' || t[0] == '|'))
				vl = 0;
			if (kl == 4 && memcmp(p, "name", 4) == 0) {
				if (nlen) {
					*why = "SKILL.md: name given twice";
					return AL_E_INVAL;
				}
				cur = out->name, curlen = &nlen, cursz = sizeof(out->name);
			} else if (kl == 11 && memcmp(p, "description", 11) == 0) {
				if (dlen) {
					*why = "SKILL.md: description given twice";
					return AL_E_INVAL;
				}
				cur = out->description, curlen = &dlen,
				cursz = sizeof(out->description);
			}
			if (cur && fm_value(v, vl, cur, cursz, curlen) != NULL) {
				*why = cur == out->name
				           ? "SKILL.md: name: at most 64 characters"
				           : "SKILL.md: description: at most 1024 bytes";
				return AL_E_INVAL;
			}
		}
		p = nl ? nl + 1 : end;
	}
	if (!closed) {
		*why = "SKILL.md: front matter is not closed by a '---' line";
		return AL_E_INVAL;
	}
	if (nlen == 0) {
		*why = "SKILL.md: front matter needs a name";
		return AL_E_INVAL;
	}
	for (size_t i = 0; i < nlen; i++) {
		char ch = out->name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) {
			*why = "SKILL.md: name: only lower-case letters, digits and '-'";
			return AL_E_INVAL;
		}
	}
	if (strstr(out->name, "anthropic") || strstr(out->name, "claude")) {
		*why = "SKILL.md: name: 'anthropic' and 'claude' are reserved";
		return AL_E_INVAL;
	}
	if (dlen == 0) {
		*why = "SKILL.md: front matter needs a description";
		return AL_E_INVAL;
	}
	if (strchr(out->description, '<') || strchr(out->description, '>')) {
		*why = "SKILL.md: description: no XML tags ('<', '>')";
		return AL_E_INVAL;
	}
	json_t *j = json_string(out->description);
	if (j == NULL) {
		*why = "SKILL.md: description must be UTF-8";
		return AL_E_INVAL;
	}
	json_decref(j);
	return 0;
}

static void
octal(unsigned char *dst, size_t width, uint64_t v)
{
	/* width-1 digits, zero-padded, then NUL */
	char tmp[24];
	snprintf(tmp, sizeof(tmp), "%0*llo", (int)(width - 1), (unsigned long long)v);
	memcpy(dst, tmp, width - 1);
	dst[width - 1] = '\0';
}

int
skill_tar_header(const char *path, uint64_t size, int64_t mtime, unsigned char out[SKILL_TAR_BLOCK])
{
	size_t n = strlen(path), split = 0;
	memset(out, 0, SKILL_TAR_BLOCK);
	if (n > 100) {
		/* prefix (≤ 155) / name (≤ 100), cut at a '/' */
		for (size_t i = n - 1; i > 0; i--)
			if (path[i] == '/' && n - i - 1 <= 100 && n - i - 1 > 0 && i <= 155) {
				split = i;
				break;
			}
		if (split == 0)
			return AL_E_TOOBIG;
		memcpy(out + 345, path, split);
		memcpy(out, path + split + 1, n - split - 1);
	} else {
		memcpy(out, path, n);
	}
	if (size > 077777777777ull)
		return AL_E_TOOBIG;
	octal(out + 100, 8, 0644);
	octal(out + 108, 8, 0);
	octal(out + 116, 8, 0);
	octal(out + 124, 12, size);
	octal(out + 136, 12, mtime > 0 ? (uint64_t)mtime : 0);
	out[156] = '0';
	memcpy(out + 257, "ustar", 6);
	memcpy(out + 263, "00", 2);
	memset(out + 148, ' ', 8);
	unsigned sum = 0;
	for (size_t i = 0; i < SKILL_TAR_BLOCK; i++)
		sum += out[i];
	snprintf((char *)out + 148, 8, "%06o", sum);
	out[155] = ' ';
	return 0;
}
