/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <string.h>

#include "codechat-error.h"
#include "codechat-protocol.h"

/*
 * Unit tests of the shared protocol library: every rule of PROTOCOL.md's
 * "Names and sizes" at its boundaries, the request parser on good and bad
 * frames, the error domain (wire codes and D-Bus names), timestamps and
 * the message round trip.  Most tests are rows of a table, each row its own
 * GTest case, so that a failure names the rule that broke.
 */

#define OK (-1) /* "expected no error" in the tables below */

/* assertions are non-fatal (see main()), so that one broken case is
 * reported and the others still run; a pointer that the rest of a case
 * needs is checked with this, which ends the case when it is NULL */
#define assert_nonnull_or_return(ptr)                                                              \
	G_STMT_START                                                                               \
	{                                                                                          \
		g_assert_nonnull(ptr);                                                             \
		if ((ptr) == NULL)                                                                 \
			return;                                                                    \
	}                                                                                          \
	G_STMT_END

/* builds @prefix followed by @fill up to @len bytes, or @prefix alone when
 * @len is 0; long values in the tables are written this way */
static gchar *
make_value(const gchar *prefix, gchar fill, gsize len)
{
	GString *str = g_string_new(prefix);

	g_assert_cmpuint(str->len, <=, len == 0 ? str->len : len);
	while (len > 0 && str->len < len)
		g_string_append_c(str, fill);
	return g_string_free(str, FALSE);
}

/* names and sizes */

typedef gboolean (*ValidateFunc)(const gchar *value, GError **error);

static gboolean
validate_text_default(const gchar *text, GError **error)
{
	return codechat_validate_text(text, CODECHAT_MAX_TEXT, error);
}

static gboolean
validate_text_max_10(const gchar *text, GError **error)
{
	return codechat_validate_text(text, 10, error);
}

typedef struct {
	const gchar *path;
	ValidateFunc func;
	const gchar *prefix; /* the value, or its start when len > 0 */
	gchar fill;	     /* appended until the value is len bytes long */
	gsize len;	     /* 0: the value is prefix as it is */
	gint expected;	     /* OK or a CodechatError */
} ValidateCase;

#define NICK	 codechat_validate_nick
#define ROOM	 codechat_validate_room
#define TEXT	 validate_text_default
#define FILENAME codechat_validate_filename
#define LANG	 codechat_validate_lang
#define REF	 codechat_validate_ref

static const ValidateCase validate_cases[] = {
    /* nick: ^[A-Za-z][A-Za-z0-9_-]{0,31}$ */
    {"nick/len-1", NICK, "a", 0, 0, OK},
    {"nick/len-32", NICK, "a", 'b', 32, OK},
    {"nick/len-33", NICK, "a", 'b', 33, CODECHAT_ERROR_BAD_NICK},
    {"nick/len-1000", NICK, "a", 'b', 1000, CODECHAT_ERROR_BAD_NICK},
    {"nick/empty", NICK, "", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/upper", NICK, "Alice", 0, 0, OK},
    {"nick/all-allowed", NICK, "aZ09_-", 0, 0, OK},
    {"nick/start-z", NICK, "z", 0, 0, OK},
    {"nick/start-upper-z", NICK, "Z", 0, 0, OK},
    {"nick/start-digit", NICK, "1alice", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/start-underscore", NICK, "_alice", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/start-dash", NICK, "-alice", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/space", NICK, "al ice", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/dot", NICK, "al.ice", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/at", NICK, "alice@home", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/trailing-newline", NICK, "alice\n", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/non-ascii", NICK, "al\xc3\xa9", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/non-ascii-start", NICK, "\xc3\xa9mile", 0, 0, CODECHAT_ERROR_BAD_NICK},
    {"nick/invalid-utf8", NICK, "a\xff", 0, 0, CODECHAT_ERROR_BAD_NICK},

    /* room: ^[a-z0-9][a-z0-9_.-]{0,63}$ */
    {"room/len-1", ROOM, "a", 0, 0, OK},
    {"room/len-64", ROOM, "a", 'b', 64, OK},
    {"room/len-65", ROOM, "a", 'b', 65, CODECHAT_ERROR_BAD_ROOM},
    {"room/empty", ROOM, "", 0, 0, CODECHAT_ERROR_BAD_ROOM},
    {"room/start-digit", ROOM, "0day", 0, 0, OK},
    {"room/all-allowed", ROOM, "az09_.-", 0, 0, OK},
    {"room/dotted", ROOM, "gnome.gtk-4_x", 0, 0, OK},
    {"room/upper", ROOM, "General", 0, 0, CODECHAT_ERROR_BAD_ROOM},
    {"room/upper-inside", ROOM, "generaL", 0, 0, CODECHAT_ERROR_BAD_ROOM},
    {"room/start-underscore", ROOM, "_general", 0, 0, CODECHAT_ERROR_BAD_ROOM},
    {"room/start-dot", ROOM, ".general", 0, 0, CODECHAT_ERROR_BAD_ROOM},
    {"room/start-dash", ROOM, "-general", 0, 0, CODECHAT_ERROR_BAD_ROOM},
    {"room/hash", ROOM, "#general", 0, 0, CODECHAT_ERROR_BAD_ROOM},
    {"room/space", ROOM, "gen eral", 0, 0, CODECHAT_ERROR_BAD_ROOM},
    {"room/slash", ROOM, "gen/eral", 0, 0, CODECHAT_ERROR_BAD_ROOM},
    {"room/non-ascii", ROOM, "caf\xc3\xa9", 0, 0, CODECHAT_ERROR_BAD_ROOM},

    /* text: 1 to 65536 bytes of valid UTF-8 */
    {"text/len-1", TEXT, "x", 0, 0, OK},
    {"text/len-65536", TEXT, "", 'x', CODECHAT_MAX_TEXT, OK},
    {"text/len-65537", TEXT, "", 'x', CODECHAT_MAX_TEXT + 1, CODECHAT_ERROR_TOO_LONG},
    /* the limit counts bytes, not characters: 2 + 65534 and 2 + 65535 */
    {"text/bytes-65536", TEXT, "\xc3\xa9", 'x', CODECHAT_MAX_TEXT, OK},
    {"text/bytes-65537", TEXT, "\xc3\xa9", 'x', CODECHAT_MAX_TEXT + 1, CODECHAT_ERROR_TOO_LONG},
    {"text/empty", TEXT, "", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"text/multiline", TEXT, "int\tmain(void)\n{\n}\n", 0, 0, OK},
    {"text/emoji", TEXT, "\xf0\x9f\x90\xa7 ok", 0, 0, OK},
    {"text/invalid-utf8", TEXT, "a\xff", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"text/truncated-utf8", TEXT, "a\xc3", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"text/overlong-utf8", TEXT, "\xc0\xaf", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"text/surrogate-utf8", TEXT, "\xed\xa0\x80", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"text/max-10-ok", validate_text_max_10, "", 'x', 10, OK},
    {"text/max-10-too-long", validate_text_max_10, "", 'x', 11, CODECHAT_ERROR_TOO_LONG},

    /* filename: at most 255 bytes, no '/' */
    {"filename/simple", FILENAME, "main.c", 0, 0, OK},
    {"filename/len-255", FILENAME, "a", 'b', CODECHAT_MAX_FILENAME, OK},
    {"filename/len-256", FILENAME, "a", 'b', CODECHAT_MAX_FILENAME + 1, CODECHAT_ERROR_BAD_REQUEST},
    {"filename/bytes-256", FILENAME, "\xc3\xa9", 'b', 256, CODECHAT_ERROR_BAD_REQUEST},
    {"filename/empty", FILENAME, "", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"filename/slash", FILENAME, "src/main.c", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"filename/only-slash", FILENAME, "/", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"filename/trailing-slash", FILENAME, "main.c/", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"filename/backslash", FILENAME, "a\\b.c", 0, 0, OK},
    {"filename/hidden", FILENAME, ".gitignore", 0, 0, OK},
    {"filename/spaces", FILENAME, "my notes.md", 0, 0, OK},
    {"filename/utf8", FILENAME, "r\xc3\xa9sum\xc3\xa9.txt", 0, 0, OK},
    {"filename/invalid-utf8", FILENAME, "a\xff.c", 0, 0, CODECHAT_ERROR_BAD_REQUEST},

    /* ref: at most 64 bytes */
    {"ref/simple", REF, "c1", 0, 0, OK},
    {"ref/empty", REF, "", 0, 0, OK},
    {"ref/len-64", REF, "r", 'x', CODECHAT_MAX_REF, OK},
    {"ref/len-65", REF, "r", 'x', CODECHAT_MAX_REF + 1, CODECHAT_ERROR_BAD_REQUEST},
    {"ref/bytes-65", REF, "\xc3\xa9", 'x', CODECHAT_MAX_REF + 1, CODECHAT_ERROR_BAD_REQUEST},
    {"ref/invalid-utf8", REF, "a\xff", 0, 0, CODECHAT_ERROR_BAD_REQUEST},

    /* lang: a short language name such as c, diff, c++ */
    {"lang/c", LANG, "c", 0, 0, OK},
    {"lang/diff", LANG, "diff", 0, 0, OK},
    {"lang/cplusplus", LANG, "c++", 0, 0, OK},
    {"lang/csharp", LANG, "c#", 0, 0, OK},
    {"lang/punctuation", LANG, "objective-c_2.0", 0, 0, OK},
    {"lang/len-32", LANG, "l", 'x', CODECHAT_MAX_LANG, OK},
    {"lang/len-33", LANG, "l", 'x', CODECHAT_MAX_LANG + 1, CODECHAT_ERROR_BAD_REQUEST},
    {"lang/empty", LANG, "", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"lang/space", LANG, "c c", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"lang/slash", LANG, "c/c++", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"lang/quote", LANG, "c\"", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
    {"lang/non-ascii", LANG, "\xc3\xa9", 0, 0, CODECHAT_ERROR_BAD_REQUEST},
};

static void
test_validate(gconstpointer data)
{
	const ValidateCase *tc = data;
	g_autofree gchar *value = make_value(tc->prefix, tc->fill, tc->len);
	g_autoptr(GError) error = NULL;
	gboolean ret;

	if (tc->len > 0)
		g_assert_cmpuint(strlen(value), ==, tc->len);
	ret = tc->func(value, &error);
	if (tc->expected == OK) {
		g_assert_no_error(error);
		g_assert_true(ret);
	} else {
		g_assert_error(error, CODECHAT_ERROR, tc->expected);
		assert_nonnull_or_return(error);
		g_assert_cmpstr(error->message, !=, "");
		g_assert_false(ret);
	}
	/* the same answer without a GError to fill */
	g_assert_true(tc->func(value, NULL) == ret);
}

/* nick folding: nicks are unique case-insensitively */

typedef struct {
	const gchar *path;
	const gchar *a;
	const gchar *b;
	const gchar *folded_a; /* codechat_nick_fold(a), or NULL to skip */
	gboolean equal;
} NickCase;

static const NickCase nick_cases[] = {
    {"nick-fold/same", "alice", "alice", "alice", TRUE},
    {"nick-fold/upper", "Alice", "alice", "alice", TRUE},
    {"nick-fold/mixed", "aLiCe-X_9", "AlIcE-x_9", "alice-x_9", TRUE},
    {"nick-fold/all-upper", "BOB", "bob", "bob", TRUE},
    {"nick-fold/different", "alice", "alicf", "alice", FALSE},
    {"nick-fold/prefix", "alice", "alice2", "alice", FALSE},
    {"nick-fold/dash-underscore", "a-b", "a_b", "a-b", FALSE},
    {"nick-fold/null-null", NULL, NULL, NULL, TRUE},
    {"nick-fold/null-one", NULL, "alice", NULL, FALSE},
    {"nick-fold/one-null", "alice", NULL, "alice", FALSE},
};

static void
test_nick_fold(gconstpointer data)
{
	const NickCase *tc = data;

	g_assert_true(codechat_nick_equal(tc->a, tc->b) == tc->equal);
	g_assert_true(codechat_nick_equal(tc->b, tc->a) == tc->equal);
	if (tc->folded_a != NULL) {
		g_autofree gchar *folded = codechat_nick_fold(tc->a);
		g_assert_cmpstr(folded, ==, tc->folded_a);
		/* folding is what equality means */
		g_assert_true(codechat_nick_equal(folded, tc->a));
	}
	if (tc->a != NULL && tc->b != NULL) {
		g_autofree gchar *fa = codechat_nick_fold(tc->a);
		g_autofree gchar *fb = codechat_nick_fold(tc->b);
		g_assert_true((g_strcmp0(fa, fb) == 0) == tc->equal);
	}
}

/* requests */

typedef void (*RequestCheck)(const CodechatRequest *req);

typedef struct {
	const gchar *path;
	const gchar *json; /* "@@" is replaced by fill_len times fill */
	gsize fill_len;
	gchar fill;
	gsize max_text;	    /* 0: CODECHAT_MAX_TEXT */
	gint type;	    /* a CodechatRequestType, or -1 when an error is expected */
	gint error;	    /* a CodechatError, or OK */
	const gchar *ref;   /* the ref expected back, also on error, or NULL */
	RequestCheck check; /* more checks of a parsed request, or NULL */
} RequestCase;

static void
check_hello(const CodechatRequest *req)
{
	g_assert_cmpstr(req->nick, ==, "alice");
	g_assert_null(req->token);
	g_assert_null(req->client);
}

static void
check_hello_full(const CodechatRequest *req)
{
	g_assert_cmpstr(req->nick, ==, "Alice");
	g_assert_cmpstr(req->token, ==, "s3cret");
	g_assert_cmpstr(req->client, ==, "codechat/0.1.0");
}

static void
check_join_plain(const CodechatRequest *req)
{
	g_assert_cmpstr(req->room, ==, "general");
	g_assert_false(req->has_since);
	g_assert_cmpuint(req->since, ==, 0);
}

static void
check_join_since_0(const CodechatRequest *req)
{
	g_assert_cmpstr(req->room, ==, "general");
	g_assert_true(req->has_since);
	g_assert_cmpuint(req->since, ==, 0);
}

static void
check_join_since_57(const CodechatRequest *req)
{
	g_assert_true(req->has_since);
	g_assert_cmpuint(req->since, ==, 57);
}

static void
check_join_since_big(const CodechatRequest *req)
{
	g_assert_true(req->has_since);
	g_assert_cmpuint(req->since, ==, G_MAXINT64);
}

static void
check_room_general(const CodechatRequest *req)
{
	g_assert_cmpstr(req->room, ==, "general");
}

static void
check_say_room(const CodechatRequest *req)
{
	g_assert_cmpstr(req->room, ==, "general");
	g_assert_null(req->to);
	g_assert_cmpstr(req->text, ==, "hi");
	g_assert_cmpint(req->kind, ==, CODECHAT_KIND_TEXT);
	g_assert_null(req->lang);
	g_assert_null(req->filename);
}

static void
check_say_to(const CodechatRequest *req)
{
	g_assert_null(req->room);
	g_assert_cmpstr(req->to, ==, "bob");
	g_assert_cmpstr(req->text, ==, "psst");
}

static void
check_say_code(const CodechatRequest *req)
{
	g_assert_cmpint(req->kind, ==, CODECHAT_KIND_CODE);
	g_assert_cmpstr(req->lang, ==, "c");
	g_assert_cmpstr(req->filename, ==, "main.c");
	g_assert_cmpstr(req->text, ==, "int main(void);\n");
}

static void
check_say_action(const CodechatRequest *req)
{
	g_assert_cmpint(req->kind, ==, CODECHAT_KIND_ACTION);
}

static void
check_say_explicit_text(const CodechatRequest *req)
{
	g_assert_cmpint(req->kind, ==, CODECHAT_KIND_TEXT);
}

static void
check_say_long(const CodechatRequest *req)
{
	g_assert_cmpuint(strlen(req->text), ==, CODECHAT_MAX_TEXT);
}

static void
check_say_unicode(const CodechatRequest *req)
{
	/* \u00e9 and the surrogate pair of U+1F427 decoded to UTF-8 */
	g_assert_cmpstr(req->text, ==, "\xc3\xa9 \xf0\x9f\x90\xa7");
}

static void
check_say_escaped_backslash(const CodechatRequest *req)
{
	/* "\\u0000" is a backslash and five characters, not a NUL */
	g_assert_cmpstr(req->text, ==, "a\\u0000b");
}

static void
check_history_latest(const CodechatRequest *req)
{
	g_assert_cmpstr(req->room, ==, "general");
	g_assert_null(req->with);
	g_assert_false(req->has_before);
	g_assert_false(req->has_after);
	g_assert_cmpuint(req->limit, ==, 0);
}

static void
check_history_with(const CodechatRequest *req)
{
	g_assert_null(req->room);
	g_assert_cmpstr(req->with, ==, "bob");
}

static void
check_history_before(const CodechatRequest *req)
{
	g_assert_true(req->has_before);
	g_assert_cmpuint(req->before, ==, 100);
	g_assert_false(req->has_after);
}

static void
check_history_after_0(const CodechatRequest *req)
{
	g_assert_true(req->has_after);
	g_assert_cmpuint(req->after, ==, 0);
	g_assert_false(req->has_before);
}

static void
check_limit_1(const CodechatRequest *req)
{
	g_assert_cmpuint(req->limit, ==, 1);
}

static void
check_limit_500(const CodechatRequest *req)
{
	g_assert_cmpuint(req->limit, ==, CODECHAT_MAX_PAGE);
}

#define LONG_REF "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
G_STATIC_ASSERT(sizeof(LONG_REF) - 1 == CODECHAT_MAX_REF);

#define BAD(code)  -1, CODECHAT_ERROR_##code
#define GOOD(type) CODECHAT_REQUEST_##type, OK

static const RequestCase request_cases[] = {
    /* not JSON at all */
    {"request/bad-json/garbage", "not json", 0, 0, 0, BAD(BAD_JSON), NULL, NULL},
    {"request/bad-json/truncated", "{\"type\":", 0, 0, 0, BAD(BAD_JSON), NULL, NULL},
    {"request/bad-json/unterminated", "{\"type\":\"ping\"", 0, 0, 0, BAD(BAD_JSON), NULL, NULL},
    {"request/bad-json/trailing-comma", "{\"type\":\"ping\",}", 0, 0, 0, BAD(BAD_JSON), NULL, NULL},
    {"request/bad-json/trailing-garbage",
     "{\"type\":\"ping\"} x",
     0,
     0,
     0,
     BAD(BAD_JSON),
     NULL,
     NULL},
    {"request/bad-json/nan",
     "{\"type\":\"history\",\"room\":\"a\",\"limit\":NaN}",
     0,
     0,
     0,
     BAD(BAD_JSON),
     NULL,
     NULL},
    {"request/bad-json/invalid-utf8",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"\xff\"}",
     0,
     0,
     0,
     BAD(BAD_JSON),
     NULL,
     NULL},
    /* an empty frame holds no JSON value at all */
    {"request/bad-json/empty", "", 0, 0, 0, BAD(BAD_JSON), NULL, NULL},
    {"request/bad-json/whitespace", " \n\t", 0, 0, 0, BAD(BAD_JSON), NULL, NULL},

    /* JSON, but not an object */
    {"request/non-object/array", "[{\"type\":\"ping\"}]", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/non-object/string", "\"ping\"", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/non-object/number", "42", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/non-object/null", "null", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/non-object/true", "true", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},

    /* the type */
    {"request/type/missing", "{}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/type/missing-ref", "{\"ref\":\"c1\"}", 0, 0, 0, BAD(BAD_REQUEST), "c1", NULL},
    {"request/type/null", "{\"type\":null}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/type/number", "{\"type\":1}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/type/array", "{\"type\":[\"ping\"]}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/type/unknown",
     "{\"type\":\"nope\",\"ref\":\"c2\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     "c2",
     NULL},
    {"request/type/case", "{\"type\":\"PING\"}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/type/server-only",
     "{\"type\":\"welcome\",\"nick\":\"alice\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/type/empty", "{\"type\":\"\"}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},

    /* hello */
    {"request/hello/ok",
     "{\"type\":\"hello\",\"nick\":\"alice\"}",
     0,
     0,
     0,
     GOOD(HELLO),
     NULL,
     check_hello},
    {"request/hello/full",
     "{\"type\":\"hello\",\"nick\":\"Alice\",\"token\":\"s3cret\",\"client\":\"codechat/0.1.0\","
     "\"ref\":\"h\"}",
     0,
     0,
     0,
     GOOD(HELLO),
     "h",
     check_hello_full},
    {"request/hello/unknown-fields",
     "{\"type\":\"hello\",\"nick\":\"alice\",\"x\":{\"y\":[1]}}",
     0,
     0,
     0,
     GOOD(HELLO),
     NULL,
     check_hello},
    {"request/hello/no-nick", "{\"type\":\"hello\"}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/hello/nick-number",
     "{\"type\":\"hello\",\"nick\":7}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/hello/nick-bad",
     "{\"type\":\"hello\",\"nick\":\"1alice\"}",
     0,
     0,
     0,
     BAD(BAD_NICK),
     NULL,
     NULL},
    {"request/hello/nick-32",
     "{\"type\":\"hello\",\"nick\":\"a@@\"}",
     31,
     'b',
     0,
     GOOD(HELLO),
     NULL,
     NULL},
    {"request/hello/nick-33",
     "{\"type\":\"hello\",\"nick\":\"a@@\",\"ref\":\"n\"}",
     32,
     'b',
     0,
     BAD(BAD_NICK),
     "n",
     NULL},
    {"request/hello/token-number",
     "{\"type\":\"hello\",\"nick\":\"alice\",\"token\":1}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},

    /* join, part, who */
    {"request/join/plain",
     "{\"type\":\"join\",\"room\":\"general\"}",
     0,
     0,
     0,
     GOOD(JOIN),
     NULL,
     check_join_plain},
    {"request/join/since-0",
     "{\"type\":\"join\",\"room\":\"general\",\"since\":0}",
     0,
     0,
     0,
     GOOD(JOIN),
     NULL,
     check_join_since_0},
    {"request/join/since-57",
     "{\"type\":\"join\",\"room\":\"general\",\"since\":57}",
     0,
     0,
     0,
     GOOD(JOIN),
     NULL,
     check_join_since_57},
    {"request/join/since-int64-max",
     "{\"type\":\"join\",\"room\":\"general\",\"since\":9223372036854775807}",
     0,
     0,
     0,
     GOOD(JOIN),
     NULL,
     check_join_since_big},
    {"request/join/since-null",
     "{\"type\":\"join\",\"room\":\"general\",\"since\":null}",
     0,
     0,
     0,
     GOOD(JOIN),
     NULL,
     check_join_plain},
    {"request/join/since-negative",
     "{\"type\":\"join\",\"room\":\"general\",\"since\":-1}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/join/since-string",
     "{\"type\":\"join\",\"room\":\"general\",\"since\":\"5\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/join/since-float",
     "{\"type\":\"join\",\"room\":\"general\",\"since\":1.5}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/join/no-room", "{\"type\":\"join\"}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/join/room-number",
     "{\"type\":\"join\",\"room\":5}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/join/room-upper",
     "{\"type\":\"join\",\"room\":\"General\",\"ref\":\"j\"}",
     0,
     0,
     0,
     BAD(BAD_ROOM),
     "j",
     NULL},
    {"request/join/room-64",
     "{\"type\":\"join\",\"room\":\"@@\"}",
     64,
     'r',
     0,
     GOOD(JOIN),
     NULL,
     NULL},
    {"request/join/room-65",
     "{\"type\":\"join\",\"room\":\"@@\"}",
     65,
     'r',
     0,
     BAD(BAD_ROOM),
     NULL,
     NULL},
    {"request/part/ok",
     "{\"type\":\"part\",\"room\":\"general\"}",
     0,
     0,
     0,
     GOOD(PART),
     NULL,
     check_room_general},
    {"request/part/no-room", "{\"type\":\"part\"}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/part/bad-room",
     "{\"type\":\"part\",\"room\":\"#general\"}",
     0,
     0,
     0,
     BAD(BAD_ROOM),
     NULL,
     NULL},
    {"request/who/ok",
     "{\"type\":\"who\",\"room\":\"general\"}",
     0,
     0,
     0,
     GOOD(WHO),
     NULL,
     check_room_general},
    {"request/who/no-room", "{\"type\":\"who\"}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},

    /* rooms, ping */
    {"request/rooms/ok", "{\"type\":\"rooms\",\"ref\":\"r\"}", 0, 0, 0, GOOD(ROOMS), "r", NULL},
    {"request/ping/ok", "{\"type\":\"ping\"}", 0, 0, 0, GOOD(PING), NULL, NULL},
    {"request/ping/ref", "{\"ref\":\"p1\",\"type\":\"ping\"}", 0, 0, 0, GOOD(PING), "p1", NULL},

    /* say */
    {"request/say/room",
     "{\"type\":\"say\",\"room\":\"general\",\"text\":\"hi\",\"ref\":\"c1\"}",
     0,
     0,
     0,
     GOOD(SAY),
     "c1",
     check_say_room},
    {"request/say/to",
     "{\"type\":\"say\",\"to\":\"bob\",\"text\":\"psst\"}",
     0,
     0,
     0,
     GOOD(SAY),
     NULL,
     check_say_to},
    {"request/say/room-and-to",
     "{\"type\":\"say\",\"room\":\"general\",\"to\":\"bob\",\"text\":\"hi\",\"ref\":\"c3\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     "c3",
     NULL},
    {"request/say/neither",
     "{\"type\":\"say\",\"text\":\"hi\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/room-null-to",
     "{\"type\":\"say\",\"room\":null,\"to\":\"bob\",\"text\":\"psst\"}",
     0,
     0,
     0,
     GOOD(SAY),
     NULL,
     check_say_to},
    {"request/say/bad-room",
     "{\"type\":\"say\",\"room\":\"Gen\",\"text\":\"hi\"}",
     0,
     0,
     0,
     BAD(BAD_ROOM),
     NULL,
     NULL},
    {"request/say/bad-to",
     "{\"type\":\"say\",\"to\":\"9bob\",\"text\":\"hi\"}",
     0,
     0,
     0,
     BAD(BAD_NICK),
     NULL,
     NULL},
    {"request/say/kind-text",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"hi\",\"kind\":\"text\"}",
     0,
     0,
     0,
     GOOD(SAY),
     NULL,
     check_say_explicit_text},
    {"request/say/kind-code",
     "{\"type\":\"say\",\"room\":\"a\",\"kind\":\"code\",\"lang\":\"c\",\"filename\":\"main.c\","
     "\"text\":\"int main(void);\\n\"}",
     0,
     0,
     0,
     GOOD(SAY),
     NULL,
     check_say_code},
    {"request/say/kind-action",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"waves\",\"kind\":\"action\"}",
     0,
     0,
     0,
     GOOD(SAY),
     NULL,
     check_say_action},
    {"request/say/kind-unknown",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"hi\",\"kind\":\"snippet\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/kind-upper",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"hi\",\"kind\":\"CODE\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/kind-number",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"hi\",\"kind\":1}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/no-text",
     "{\"type\":\"say\",\"room\":\"a\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/empty-text",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/text-number",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":42}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/text-object",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":{\"a\":1}}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/text-65536",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"@@\"}",
     CODECHAT_MAX_TEXT,
     'x',
     0,
     GOOD(SAY),
     NULL,
     check_say_long},
    {"request/say/text-65537",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"@@\",\"ref\":\"big\"}",
     CODECHAT_MAX_TEXT + 1,
     'x',
     0,
     BAD(TOO_LONG),
     "big",
     NULL},
    {"request/say/text-max-text-arg",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"@@\"}",
     11,
     'x',
     10,
     BAD(TOO_LONG),
     NULL,
     NULL},
    {"request/say/text-unicode-escapes",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"\\u00e9 \\ud83d\\udc27\"}",
     0,
     0,
     0,
     GOOD(SAY),
     NULL,
     check_say_unicode},
    {"request/say/text-nul",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"a\\u0000b\",\"ref\":\"z\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     "z",
     NULL},
    {"request/say/text-nul-only",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"\\u0000\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/text-escaped-backslash",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"a\\\\u0000b\"}",
     0,
     0,
     0,
     GOOD(SAY),
     NULL,
     check_say_escaped_backslash},
    {"request/say/text-backslash-then-nul",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"a\\\\\\u0000b\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/text-lone-surrogate",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"a\\ud800b\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/lang-bad",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"x\",\"lang\":\"c c\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/lang-number",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"x\",\"lang\":3}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/filename-slash",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"x\",\"filename\":\"src/main.c\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/say/filename-255",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"x\",\"filename\":\"@@\"}",
     255,
     'f',
     0,
     GOOD(SAY),
     NULL,
     NULL},
    {"request/say/filename-256",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"x\",\"filename\":\"@@\"}",
     256,
     'f',
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},

    /* history */
    {"request/history/latest",
     "{\"type\":\"history\",\"room\":\"general\"}",
     0,
     0,
     0,
     GOOD(HISTORY),
     NULL,
     check_history_latest},
    {"request/history/with",
     "{\"type\":\"history\",\"with\":\"bob\"}",
     0,
     0,
     0,
     GOOD(HISTORY),
     NULL,
     check_history_with},
    {"request/history/room-and-with",
     "{\"type\":\"history\",\"room\":\"general\",\"with\":\"bob\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/history/neither",
     "{\"type\":\"history\",\"limit\":5}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/history/bad-with",
     "{\"type\":\"history\",\"with\":\"b b\"}",
     0,
     0,
     0,
     BAD(BAD_NICK),
     NULL,
     NULL},
    {"request/history/bad-room",
     "{\"type\":\"history\",\"room\":\"G\"}",
     0,
     0,
     0,
     BAD(BAD_ROOM),
     NULL,
     NULL},
    {"request/history/before",
     "{\"type\":\"history\",\"room\":\"general\",\"before\":100}",
     0,
     0,
     0,
     GOOD(HISTORY),
     NULL,
     check_history_before},
    {"request/history/after-0",
     "{\"type\":\"history\",\"room\":\"general\",\"after\":0}",
     0,
     0,
     0,
     GOOD(HISTORY),
     NULL,
     check_history_after_0},
    {"request/history/before-and-after",
     "{\"type\":\"history\",\"room\":\"general\",\"before\":100,\"after\":5,\"ref\":\"ba\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     "ba",
     NULL},
    {"request/history/before-negative",
     "{\"type\":\"history\",\"room\":\"general\",\"before\":-1}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/history/after-string",
     "{\"type\":\"history\",\"room\":\"general\",\"after\":\"1\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/history/limit-0",
     "{\"type\":\"history\",\"room\":\"general\",\"limit\":0}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/history/limit-1",
     "{\"type\":\"history\",\"room\":\"general\",\"limit\":1}",
     0,
     0,
     0,
     GOOD(HISTORY),
     NULL,
     check_limit_1},
    {"request/history/limit-500",
     "{\"type\":\"history\",\"room\":\"general\",\"limit\":500}",
     0,
     0,
     0,
     GOOD(HISTORY),
     NULL,
     check_limit_500},
    {"request/history/limit-1000",
     "{\"type\":\"history\",\"room\":\"general\",\"limit\":1000}",
     0,
     0,
     0,
     GOOD(HISTORY),
     NULL,
     check_limit_500},
    {"request/history/limit-huge",
     "{\"type\":\"history\",\"room\":\"general\",\"limit\":5000000000}",
     0,
     0,
     0,
     GOOD(HISTORY),
     NULL,
     check_limit_500},
    {"request/history/limit-negative",
     "{\"type\":\"history\",\"room\":\"general\",\"limit\":-5}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/history/limit-string",
     "{\"type\":\"history\",\"room\":\"general\",\"limit\":\"10\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/history/limit-float",
     "{\"type\":\"history\",\"room\":\"general\",\"limit\":10.5}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},

    /* ref: copied into the reply, also when the rest of the frame fails */
    {"request/ref/64",
     "{\"type\":\"ping\",\"ref\":\"" LONG_REF "\"}",
     0,
     0,
     0,
     GOOD(PING),
     LONG_REF,
     NULL},
    {"request/ref/65",
     "{\"type\":\"ping\",\"ref\":\"x" LONG_REF "\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     NULL,
     NULL},
    {"request/ref/number", "{\"type\":\"ping\",\"ref\":12}", 0, 0, 0, BAD(BAD_REQUEST), NULL, NULL},
    {"request/ref/null", "{\"type\":\"ping\",\"ref\":null}", 0, 0, 0, GOOD(PING), NULL, NULL},
    {"request/ref/empty", "{\"type\":\"ping\",\"ref\":\"\"}", 0, 0, 0, GOOD(PING), "", NULL},
    {"request/ref/on-bad-room",
     "{\"type\":\"who\",\"room\":\"BAD\",\"ref\":\"w\"}",
     0,
     0,
     0,
     BAD(BAD_ROOM),
     "w",
     NULL},
    {"request/ref/on-missing-field",
     "{\"ref\":\"m\",\"type\":\"say\",\"room\":\"a\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     "m",
     NULL},
    {"request/ref/on-limit-0",
     "{\"type\":\"history\",\"room\":\"a\",\"limit\":0,\"ref\":\"l0\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     "l0",
     NULL},
    {"request/ref/on-nul",
     "{\"type\":\"ping\",\"ref\":\"n1\",\"junk\":\"\\u0000\"}",
     0,
     0,
     0,
     BAD(BAD_REQUEST),
     "n1",
     NULL},
};

static GString *
request_case_json(const RequestCase *tc)
{
	GString *json = g_string_new(tc->json);

	if (tc->fill_len > 0) {
		g_autofree gchar *fill = make_value("", tc->fill, tc->fill_len);
		g_assert_cmpuint(g_string_replace(json, "@@", fill, 1), ==, 1);
	}
	return json;
}

static void
test_request(gconstpointer data)
{
	const RequestCase *tc = data;
	g_autoptr(GString) json = request_case_json(tc);
	g_autoptr(CodechatRequest) req = NULL;
	g_autoptr(GError) error = NULL;
	static gchar stale[] = "stale";
	gchar *ref_out = stale; /* must be overwritten, NULL included */
	g_autofree gchar *ref = NULL;
	gsize max_text = tc->max_text != 0 ? tc->max_text : CODECHAT_MAX_TEXT;

	req = codechat_request_parse(NULL, json->str, json->len, max_text, &ref_out, &error);
	g_assert_true(ref_out != stale);
	ref = ref_out != stale ? ref_out : NULL;
	if (tc->error == OK) {
		g_assert_no_error(error);
		assert_nonnull_or_return(req);
		g_assert_cmpint(req->type, ==, tc->type);
		g_assert_cmpstr(req->ref, ==, tc->ref);
		if (tc->check != NULL)
			tc->check(req);
	} else {
		g_assert_error(error, CODECHAT_ERROR, tc->error);
		g_assert_null(req);
		assert_nonnull_or_return(error);
		/* what the daemon sends back must be a proper error frame */
		{
			g_autofree gchar *frame = codechat_error_frame(error, ref);
			g_autoptr(JsonNode) node = json_from_string(frame, NULL);
			JsonObject *obj;

			assert_nonnull_or_return(node);
			obj = json_node_get_object(node);
			g_assert_cmpstr(
			    json_object_get_string_member_with_default(obj, "type", NULL),
			    ==,
			    "error");
			g_assert_cmpstr(
			    json_object_get_string_member_with_default(obj, "code", NULL),
			    ==,
			    codechat_error_to_code(tc->error));
			g_assert_true(json_object_has_member(obj, "ref") == (tc->ref != NULL));
		}
	}
	/* the ref is handed back on success and on error alike */
	g_assert_cmpstr(ref, ==, tc->ref);

	/* the same answer when the caller wants no ref and no GError, and with a
	 * reused parser */
	{
		g_autoptr(JsonParser) parser = json_parser_new_immutable();
		g_autoptr(CodechatRequest) req2 = NULL;

		req2 = codechat_request_parse(parser, json->str, json->len, max_text, NULL, NULL);
		g_assert_true((req2 != NULL) == (tc->error == OK));
	}
}

/* codechat_request_parse_full() names the request's type also when another
 * field is wrong: the daemon tells a bad hello from a request before hello */
typedef struct {
	const gchar *path;
	const gchar *json;
	gint type;	  /* a CodechatRequestType, or -1 */
	gint error;	  /* a CodechatError, or OK */
	const gchar *ref; /* expected back, or NULL */
} RequestTypeCase;

static const RequestTypeCase request_type_cases[] = {
    {"request-type/ok", "{\"type\":\"ping\"}", CODECHAT_REQUEST_PING, OK, NULL},
    {"request-type/bad-nick",
     "{\"type\":\"hello\",\"nick\":\"1x\",\"ref\":\"h\"}",
     CODECHAT_REQUEST_HELLO,
     CODECHAT_ERROR_BAD_NICK,
     "h"},
    {"request-type/no-nick",
     "{\"type\":\"hello\"}",
     CODECHAT_REQUEST_HELLO,
     CODECHAT_ERROR_BAD_REQUEST,
     NULL},
    {"request-type/bad-ref",
     "{\"type\":\"hello\",\"nick\":\"alice\",\"ref\":5}",
     CODECHAT_REQUEST_HELLO,
     CODECHAT_ERROR_BAD_REQUEST,
     NULL},
    {"request-type/nul",
     "{\"type\":\"say\",\"room\":\"a\",\"text\":\"\\u0000\"}",
     CODECHAT_REQUEST_SAY,
     CODECHAT_ERROR_BAD_REQUEST,
     NULL},
    {"request-type/bad-room",
     "{\"type\":\"join\",\"room\":\"A\",\"ref\":\"j\"}",
     CODECHAT_REQUEST_JOIN,
     CODECHAT_ERROR_BAD_ROOM,
     "j"},
    {"request-type/unknown",
     "{\"type\":\"nope\",\"ref\":\"u\"}",
     -1,
     CODECHAT_ERROR_BAD_REQUEST,
     "u"},
    {"request-type/missing", "{\"ref\":\"m\"}", -1, CODECHAT_ERROR_BAD_REQUEST, "m"},
    {"request-type/not-string", "{\"type\":7}", -1, CODECHAT_ERROR_BAD_REQUEST, NULL},
    {"request-type/not-object", "[\"ping\"]", -1, CODECHAT_ERROR_BAD_REQUEST, NULL},
    {"request-type/bad-json", "{\"type\":\"ping\"", -1, CODECHAT_ERROR_BAD_JSON, NULL},
};

static void
test_request_type(gconstpointer data)
{
	const RequestTypeCase *tc = data;
	g_autoptr(CodechatRequest) req = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *ref = NULL;
	gint type = -42;

	req = codechat_request_parse_full(NULL,
					  tc->json,
					  strlen(tc->json),
					  CODECHAT_MAX_TEXT,
					  &ref,
					  &type,
					  &error);
	g_assert_cmpint(type, ==, tc->type);
	g_assert_cmpstr(ref, ==, tc->ref);
	if (tc->error == OK) {
		g_assert_no_error(error);
		assert_nonnull_or_return(req);
		g_assert_cmpint(req->type, ==, tc->type);
	} else {
		g_assert_error(error, CODECHAT_ERROR, tc->error);
		g_assert_null(req);
	}
}

/* a request stays valid after its parser has moved on to the next frame */
static void
test_request_parser_reuse(void)
{
	static const gchar first[] = "{\"type\":\"say\",\"room\":\"general\",\"text\":\"one\"}";
	static const gchar second[] = "{\"type\":\"hello\",\"nick\":\"bob\",\"ref\":\"2\"}";
	g_autoptr(JsonParser) parser = json_parser_new_immutable();
	g_autoptr(CodechatRequest) a = NULL;
	g_autoptr(CodechatRequest) b = NULL;
	g_autoptr(CodechatRequest) c = NULL;
	g_autoptr(GError) error_a = NULL;
	g_autoptr(GError) error_b = NULL;
	g_autoptr(GError) error_c = NULL;

	a = codechat_request_parse(parser, first, strlen(first), CODECHAT_MAX_TEXT, NULL, &error_a);
	g_assert_no_error(error_a);
	b = codechat_request_parse(parser,
				   second,
				   strlen(second),
				   CODECHAT_MAX_TEXT,
				   NULL,
				   &error_b);
	g_assert_no_error(error_b);
	c = codechat_request_parse(parser, "{", 1, CODECHAT_MAX_TEXT, NULL, &error_c);
	g_assert_error(error_c, CODECHAT_ERROR, CODECHAT_ERROR_BAD_JSON);
	g_assert_null(c);
	assert_nonnull_or_return(a);
	assert_nonnull_or_return(b);
	g_assert_cmpint(a->type, ==, CODECHAT_REQUEST_SAY);
	g_assert_cmpstr(a->room, ==, "general");
	g_assert_cmpstr(a->text, ==, "one");
	g_assert_cmpint(b->type, ==, CODECHAT_REQUEST_HELLO);
	g_assert_cmpstr(b->nick, ==, "bob");
	g_assert_cmpstr(b->ref, ==, "2");
}

/* the length argument is honoured: bytes past it are not part of the frame */
static void
test_request_length(void)
{
	static const gchar frame[] = "{\"type\":\"ping\"}{\"type\":";
	g_autoptr(CodechatRequest) req = NULL;
	g_autoptr(GError) error = NULL;

	req = codechat_request_parse(NULL, frame, strlen("{\"type\":\"ping\"}"), 0, NULL, &error);
	g_assert_no_error(error);
	assert_nonnull_or_return(req);
	g_assert_cmpint(req->type, ==, CODECHAT_REQUEST_PING);
}

/* json-glib recurses once per nesting level: a frame of 120000 '[' and as
 * many ']' (240000 bytes, under the 256 KiB frame limit) must get an error,
 * not overflow the stack and take the daemon down.  The parse runs in a
 * subprocess so that a crash fails this case alone. */
static void
test_request_deep_nesting(void)
{
	const guint depth = 120000;
	g_autoptr(GString) frame = NULL;
	g_autoptr(CodechatRequest) req = NULL;
	g_autoptr(GError) error = NULL;

	if (!g_test_subprocess()) {
		g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
		g_test_trap_assert_passed();
		return;
	}
	frame = g_string_new("{\"type\":\"ping\",\"x\":");
	for (guint i = 0; i < depth; i++)
		g_string_append_c(frame, '[');
	for (guint i = 0; i < depth; i++)
		g_string_append_c(frame, ']');
	g_string_append_c(frame, '}');
	g_assert_cmpuint(frame->len, <, CODECHAT_DEFAULT_MAX_FRAME);
	req = codechat_request_parse(NULL, frame->str, frame->len, CODECHAT_MAX_TEXT, NULL, &error);
	g_assert_null(req);
	g_assert_nonnull(error);
	if (error != NULL)
		g_assert_true(g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_BAD_JSON) ||
			      g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_BAD_REQUEST));
}

/* moderate nesting in a field the server ignores is fine */
static void
test_request_some_nesting(void)
{
	g_autoptr(GString) frame = g_string_new("{\"type\":\"ping\",\"x\":");
	g_autoptr(CodechatRequest) req = NULL;
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < 16; i++)
		g_string_append(frame, "{\"a\":[");
	for (guint i = 0; i < 16; i++)
		g_string_append(frame, "]}");
	g_string_append_c(frame, '}');
	req = codechat_request_parse(NULL, frame->str, frame->len, CODECHAT_MAX_TEXT, NULL, &error);
	g_assert_no_error(error);
	assert_nonnull_or_return(req);
	g_assert_cmpint(req->type, ==, CODECHAT_REQUEST_PING);
}

static void
test_request_type_names(void)
{
	static const struct {
		CodechatRequestType type;
		const gchar *name;
	} names[] = {
	    {CODECHAT_REQUEST_HELLO, "hello"},
	    {CODECHAT_REQUEST_JOIN, "join"},
	    {CODECHAT_REQUEST_PART, "part"},
	    {CODECHAT_REQUEST_SAY, "say"},
	    {CODECHAT_REQUEST_HISTORY, "history"},
	    {CODECHAT_REQUEST_WHO, "who"},
	    {CODECHAT_REQUEST_ROOMS, "rooms"},
	    {CODECHAT_REQUEST_PING, "ping"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(names); i++)
		g_assert_cmpstr(codechat_request_type_to_string(names[i].type), ==, names[i].name);
	g_assert_cmpstr(codechat_request_type_to_string((CodechatRequestType)99), ==, "unknown");
}

static void
test_kind_names(void)
{
	static const struct {
		CodechatKind kind;
		const gchar *name;
	} names[] = {
	    {CODECHAT_KIND_TEXT, "text"},
	    {CODECHAT_KIND_CODE, "code"},
	    {CODECHAT_KIND_ACTION, "action"},
	};
	CodechatKind kind;

	for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
		kind = (CodechatKind)99;
		g_assert_cmpstr(codechat_kind_to_string(names[i].kind), ==, names[i].name);
		g_assert_true(codechat_kind_from_string(names[i].name, &kind));
		g_assert_cmpint(kind, ==, names[i].kind);
	}
	kind = CODECHAT_KIND_ACTION;
	g_assert_false(codechat_kind_from_string("snippet", &kind));
	g_assert_false(codechat_kind_from_string("", &kind));
	g_assert_false(codechat_kind_from_string(NULL, &kind));
	g_assert_cmpint(kind, ==, CODECHAT_KIND_ACTION);
	g_assert_cmpstr(codechat_kind_to_string((CodechatKind)99), ==, "text");
}

/* errors: every protocol code, its wire name and its D-Bus name */

typedef struct {
	gint code;
	const gchar *wire; /* PROTOCOL.md's name, NULL for client-side errors */
	const gchar *dbus; /* the suffix after io.github.codechat.Codechat.Error. */
} ErrorCase;

static const ErrorCase error_cases[] = {
    {CODECHAT_ERROR_BAD_JSON, "bad-json", "BadJson"},
    {CODECHAT_ERROR_BAD_REQUEST, "bad-request", "BadRequest"},
    {CODECHAT_ERROR_NOT_AUTHENTICATED, "not-authenticated", "NotAuthenticated"},
    {CODECHAT_ERROR_AUTH_FAILED, "auth-failed", "AuthFailed"},
    {CODECHAT_ERROR_BAD_NICK, "bad-nick", "BadNick"},
    {CODECHAT_ERROR_NICK_TAKEN, "nick-taken", "NickTaken"},
    {CODECHAT_ERROR_BAD_ROOM, "bad-room", "BadRoom"},
    {CODECHAT_ERROR_NOT_JOINED, "not-joined", "NotJoined"},
    {CODECHAT_ERROR_TOO_LONG, "too-long", "TooLong"},
    {CODECHAT_ERROR_RATE_LIMITED, "rate-limited", "RateLimited"},
    {CODECHAT_ERROR_UNKNOWN_NICK, "unknown-nick", "UnknownNick"},
    {CODECHAT_ERROR_OVERLOADED, "overloaded", "Overloaded"},
    {CODECHAT_ERROR_INTERNAL, "internal", "Internal"},
    {CODECHAT_ERROR_NOT_CONNECTED, NULL, "NotConnected"},
    {CODECHAT_ERROR_CLOSED, NULL, "Closed"},
    {CODECHAT_ERROR_TIMED_OUT, NULL, "TimedOut"},
    {CODECHAT_ERROR_INVALID_ARGUMENT, NULL, "InvalidArgument"},
};

G_STATIC_ASSERT(G_N_ELEMENTS(error_cases) == CODECHAT_ERROR_LAST);

/* the case's D-Bus name suffix, spelled from the wire name where there is
 * one ("rate-limited" -> "RateLimited"), so that both tables agree */
static gchar *
camel_case(const gchar *wire)
{
	GString *str = g_string_new(NULL);
	gboolean upper = TRUE;

	for (const gchar *p = wire; *p != '\0'; p++) {
		if (*p == '-') {
			upper = TRUE;
			continue;
		}
		g_string_append_c(str, upper ? g_ascii_toupper(*p) : *p);
		upper = FALSE;
	}
	return g_string_free(str, FALSE);
}

static void
test_error_code(gconstpointer data)
{
	const ErrorCase *tc = data;

	if (tc->wire != NULL) {
		g_autofree gchar *camel = camel_case(tc->wire);

		g_assert_cmpstr(codechat_error_to_code(tc->code), ==, tc->wire);
		g_assert_cmpint(codechat_error_from_code(tc->wire), ==, tc->code);
		g_assert_cmpint(codechat_error_from_code(codechat_error_to_code(tc->code)),
				==,
				tc->code);
		g_assert_cmpstr(camel, ==, tc->dbus);
	} else {
		/* client-side errors never go on the wire as themselves */
		g_assert_cmpstr(codechat_error_to_code(tc->code), ==, "internal");
	}
}

static void
test_error_code_unknown(void)
{
	g_assert_cmpstr(codechat_error_to_code(-1), ==, "internal");
	g_assert_cmpstr(codechat_error_to_code(CODECHAT_ERROR_LAST), ==, "internal");
	g_assert_cmpstr(codechat_error_to_code(G_MAXINT), ==, "internal");
	g_assert_cmpint(codechat_error_from_code(NULL), ==, CODECHAT_ERROR_INTERNAL);
	g_assert_cmpint(codechat_error_from_code(""), ==, CODECHAT_ERROR_INTERNAL);
	g_assert_cmpint(codechat_error_from_code("no-such-code"), ==, CODECHAT_ERROR_INTERNAL);
	g_assert_cmpint(codechat_error_from_code("BAD-JSON"), ==, CODECHAT_ERROR_INTERNAL);
	g_assert_cmpint(codechat_error_from_code("bad-json "), ==, CODECHAT_ERROR_INTERNAL);
}

static void
test_error_dbus(gconstpointer data)
{
	const ErrorCase *tc = data;
	g_autofree gchar *expected =
	    g_strconcat("io.github.codechat.Codechat.Error.", tc->dbus, NULL);
	g_autoptr(GError) local = g_error_new_literal(CODECHAT_ERROR, tc->code, "it went wrong");
	g_autoptr(GError) remote = NULL;
	g_autofree gchar *encoded = NULL;
	g_autofree gchar *remote_name = NULL;

	g_assert_true(g_dbus_is_interface_name(expected));

	/* local -> bus: the registered name, not org.gtk.GDBus.UnmappedGError */
	encoded = g_dbus_error_encode_gerror(local);
	g_assert_cmpstr(encoded, ==, expected);

	/* bus -> local: the domain and code come back */
	remote = g_dbus_error_new_for_dbus_error(expected, "it went wrong");
	g_assert_error(remote, CODECHAT_ERROR, tc->code);
	g_assert_true(g_dbus_error_is_remote_error(remote));
	remote_name = g_dbus_error_get_remote_error(remote);
	g_assert_cmpstr(remote_name, ==, expected);
	g_assert_true(g_dbus_error_strip_remote_error(remote));
	g_assert_cmpstr(remote->message, ==, "it went wrong");
}

static void
test_error_frame(void)
{
	g_autoptr(GError) error = g_error_new_literal(CODECHAT_ERROR,
						      CODECHAT_ERROR_RATE_LIMITED,
						      "slow down: 20 messages per second");
	g_autoptr(GError) foreign =
	    g_error_new_literal(G_IO_ERROR, G_IO_ERROR_FAILED, "disk on fire");
	g_autoptr(GError) client =
	    g_error_new_literal(CODECHAT_ERROR, CODECHAT_ERROR_CLOSED, "gone");
	g_autofree gchar *with_ref = codechat_error_frame(error, "c1");
	g_autofree gchar *without_ref = codechat_error_frame(error, NULL);
	g_autofree gchar *foreign_frame = codechat_error_frame(foreign, NULL);
	g_autofree gchar *client_frame = codechat_error_frame(client, NULL);
	g_autoptr(JsonNode) a = json_from_string(with_ref, NULL);
	g_autoptr(JsonNode) b = json_from_string(without_ref, NULL);
	g_autoptr(JsonNode) c = json_from_string(foreign_frame, NULL);
	g_autoptr(JsonNode) d = json_from_string(client_frame, NULL);
	JsonObject *obj;

	assert_nonnull_or_return(a);
	obj = json_node_get_object(a);
	g_assert_cmpuint(json_object_get_size(obj), ==, 4);
	g_assert_cmpstr(json_object_get_string_member_with_default(obj, "type", NULL), ==, "error");
	g_assert_cmpstr(json_object_get_string_member_with_default(obj, "code", NULL),
			==,
			"rate-limited");
	g_assert_cmpstr(json_object_get_string_member_with_default(obj, "message", NULL),
			==,
			"slow down: 20 messages per second");
	g_assert_cmpstr(json_object_get_string_member_with_default(obj, "ref", NULL), ==, "c1");

	assert_nonnull_or_return(b);
	obj = json_node_get_object(b);
	g_assert_cmpuint(json_object_get_size(obj), ==, 3);
	g_assert_false(json_object_has_member(obj, "ref"));

	/* errors from other domains and client-side ones are "internal" */
	assert_nonnull_or_return(c);
	g_assert_cmpstr(
	    json_object_get_string_member_with_default(json_node_get_object(c), "code", NULL),
	    ==,
	    "internal");
	assert_nonnull_or_return(d);
	g_assert_cmpstr(
	    json_object_get_string_member_with_default(json_node_get_object(d), "code", NULL),
	    ==,
	    "internal");
}

/* timestamps: RFC 3339, UTC, milliseconds */

#define TS_2026 G_GINT64_CONSTANT(1795640400) /* 2026-11-25T21:00:00Z */

typedef struct {
	const gchar *path;
	gint64 unix_us;
	const gchar *text;
} TimestampCase;

static const TimestampCase timestamp_cases[] = {
    {"timestamp/epoch", 0, "1970-01-01T00:00:00.000Z"},
    {"timestamp/protocol-example", TS_2026 *G_USEC_PER_SEC + 123000, "2026-11-25T21:00:00.123Z"},
    {"timestamp/ms-1", TS_2026 *G_USEC_PER_SEC + 1000, "2026-11-25T21:00:00.001Z"},
    {"timestamp/ms-999", TS_2026 *G_USEC_PER_SEC + 999000, "2026-11-25T21:00:00.999Z"},
    {"timestamp/leap-day",
     G_GINT64_CONSTANT(951868799) * G_USEC_PER_SEC + 500000,
     "2000-02-29T23:59:59.500Z"},
    {"timestamp/past-2038",
     G_GINT64_CONSTANT(2147483648) * G_USEC_PER_SEC,
     "2038-01-19T03:14:08.000Z"},
};

static void
test_timestamp(gconstpointer data)
{
	const TimestampCase *tc = data;
	g_autofree gchar *text = codechat_timestamp_format(tc->unix_us);
	gint64 parsed = -1;

	g_assert_cmpstr(text, ==, tc->text);
	g_assert_true(codechat_timestamp_parse(tc->text, &parsed));
	g_assert_cmpint(parsed, ==, tc->unix_us);
}

static void
test_timestamp_shape(void)
{
	g_autoptr(GRegex) shape =
	    g_regex_new("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
			0,
			0,
			NULL);
	g_autoptr(GDateTime) now = g_date_time_new_now_utc();
	g_autofree gchar *text = codechat_timestamp_format(
	    g_date_time_to_unix(now) * G_USEC_PER_SEC + g_date_time_get_microsecond(now));
	g_autofree gchar *expected_prefix = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S.");

	assert_nonnull_or_return(shape);
	g_assert_true(g_regex_match(shape, text, 0, NULL));
	g_assert_true(g_str_has_prefix(text, expected_prefix));
}

/* every millisecond survives the round trip; microseconds are cut, not
 * rounded, so a message's ts never lies in the future */
static void
test_timestamp_round_trip(void)
{
	for (gint64 ms = 0; ms < 1000; ms++) {
		gint64 us = TS_2026 * G_USEC_PER_SEC + ms * 1000;
		g_autofree gchar *text = codechat_timestamp_format(us);
		g_autofree gchar *cut = codechat_timestamp_format(us + 999);
		gint64 parsed = -1;

		g_assert_cmpstr(text, ==, cut);
		g_assert_true(codechat_timestamp_parse(text, &parsed));
		g_assert_cmpint(parsed, ==, us);
	}
}

static void
test_timestamp_parse(void)
{
	gint64 parsed = -1;
	gint64 expected = TS_2026 * G_USEC_PER_SEC + 123000;

	/* other offsets and precisions of RFC 3339 mean the same instant */
	g_assert_true(codechat_timestamp_parse("2026-11-25T22:00:00.123+01:00", &parsed));
	g_assert_cmpint(parsed, ==, expected);
	g_assert_true(codechat_timestamp_parse("2026-11-25T21:00:00.123000Z", &parsed));
	g_assert_cmpint(parsed, ==, expected);
	g_assert_true(codechat_timestamp_parse("2026-11-25T21:00:00Z", &parsed));
	g_assert_cmpint(parsed, ==, TS_2026 * G_USEC_PER_SEC);

	/* no zone, no time, garbage, nothing */
	parsed = 42;
	g_assert_false(codechat_timestamp_parse("2026-11-25T21:00:00.123", &parsed));
	g_assert_false(codechat_timestamp_parse("2026-11-25", &parsed));
	g_assert_false(codechat_timestamp_parse("yesterday", &parsed));
	g_assert_false(codechat_timestamp_parse("", &parsed));
	g_assert_false(codechat_timestamp_parse(NULL, &parsed));
	g_assert_cmpint(parsed, ==, 42);
}

/* messages: serialize, then parse back */

typedef struct {
	const gchar *path;
	const gchar *room;
	const gchar *to;
	const gchar *from;
	guint64 id;
	gint64 ts;
	CodechatKind kind;
	const gchar *text;
	const gchar *lang;
	const gchar *filename;
	const gchar *ref;
} MessageCase;

static const MessageCase message_cases[] = {
    {"message/room",
     "general",
     NULL,
     "alice",
     58,
     TS_2026 *G_USEC_PER_SEC + 123000,
     CODECHAT_KIND_TEXT,
     "hi",
     NULL,
     NULL,
     "c1"},
    {"message/room-no-ref",
     "general",
     NULL,
     "alice",
     59,
     TS_2026 *G_USEC_PER_SEC,
     CODECHAT_KIND_TEXT,
     "hi again",
     NULL,
     NULL,
     NULL},
    {"message/direct",
     NULL,
     "bob",
     "alice",
     7,
     TS_2026 *G_USEC_PER_SEC + 1000000,
     CODECHAT_KIND_CODE,
     "int main(void);",
     "c",
     "main.c",
     NULL},
    {"message/direct-ref",
     NULL,
     "bob",
     "alice",
     8,
     TS_2026 *G_USEC_PER_SEC,
     CODECHAT_KIND_TEXT,
     "psst",
     NULL,
     NULL,
     "d1"},
    {"message/code-lang-only",
     "dev",
     NULL,
     "carol",
     1,
     0,
     CODECHAT_KIND_CODE,
     "--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n",
     "diff",
     NULL,
     "p"},
    {"message/filename-only",
     "dev",
     NULL,
     "carol",
     2,
     0,
     CODECHAT_KIND_CODE,
     "[core]\n",
     NULL,
     "config",
     NULL},
    {"message/action",
     "general",
     NULL,
     "Bob",
     3,
     TS_2026 *G_USEC_PER_SEC,
     CODECHAT_KIND_ACTION,
     "waves",
     NULL,
     NULL,
     NULL},
    {"message/unicode",
     "general",
     NULL,
     "alice",
     4,
     TS_2026 *G_USEC_PER_SEC,
     CODECHAT_KIND_TEXT,
     "caf\xc3\xa9 \xf0\x9f\x90\xa7 \"quoted\" \\ back\tslash\n",
     NULL,
     "r\xc3\xa9sum\xc3\xa9.txt",
     NULL},
    {"message/big-id",
     "general",
     NULL,
     "alice",
     G_MAXINT64,
     TS_2026 *G_USEC_PER_SEC,
     CODECHAT_KIND_TEXT,
     "last",
     NULL,
     NULL,
     NULL},
};

static void
test_message_round_trip(gconstpointer data)
{
	const MessageCase *tc = data;
	g_autoptr(CodechatMessage) msg = codechat_message_new();
	g_autoptr(CodechatMessage) back = NULL;
	g_autoptr(JsonNode) node = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *json = NULL;
	g_autofree gchar *ts = codechat_timestamp_format(tc->ts);
	JsonObject *obj;

	msg->room = g_strdup(tc->room);
	msg->to = g_strdup(tc->to);
	msg->from = g_strdup(tc->from);
	msg->id = tc->id;
	msg->ts = tc->ts;
	msg->kind = tc->kind;
	msg->text = g_strdup(tc->text);
	msg->lang = g_strdup(tc->lang);
	msg->filename = g_strdup(tc->filename);

	json = codechat_message_serialize(msg, tc->ref);
	assert_nonnull_or_return(json);
	g_assert_null(strchr(json, '\n')); /* one frame, one line */
	node = json_from_string(json, &error);
	g_assert_no_error(error);
	assert_nonnull_or_return(node);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(node));
	obj = json_node_get_object(node);

	/* the wire shape of PROTOCOL.md */
	g_assert_cmpstr(json_object_get_string_member_with_default(obj, "type", NULL),
			==,
			"message");
	g_assert_true(json_object_has_member(obj, "room") == (tc->room != NULL));
	g_assert_true(json_object_has_member(obj, "to") == (tc->room == NULL));
	g_assert_true(json_object_has_member(obj, "lang") == (tc->lang != NULL));
	g_assert_true(json_object_has_member(obj, "filename") == (tc->filename != NULL));
	g_assert_true(json_object_has_member(obj, "ref") == (tc->ref != NULL));
	if (tc->ref != NULL)
		g_assert_cmpstr(json_object_get_string_member_with_default(obj, "ref", NULL),
				==,
				tc->ref);
	g_assert_cmpint(json_object_get_int_member_with_default(obj, "id", -1), ==, (gint64)tc->id);
	g_assert_cmpstr(json_object_get_string_member_with_default(obj, "ts", NULL), ==, ts);
	g_assert_cmpstr(json_object_get_string_member_with_default(obj, "kind", NULL),
			==,
			codechat_kind_to_string(tc->kind));
	g_assert_cmpstr(json_object_get_string_member_with_default(obj, "text", NULL),
			==,
			tc->text);

	/* and back */
	back = codechat_message_from_json(obj, &error);
	g_assert_no_error(error);
	assert_nonnull_or_return(back);
	g_assert_cmpstr(back->room, ==, tc->room);
	g_assert_cmpstr(back->to, ==, tc->to);
	g_assert_cmpstr(back->from, ==, tc->from);
	g_assert_cmpuint(back->id, ==, tc->id);
	g_assert_cmpint(back->ts, ==, tc->ts - tc->ts % 1000); /* milliseconds on the wire */
	g_assert_cmpint(back->kind, ==, tc->kind);
	g_assert_cmpstr(back->text, ==, tc->text);
	g_assert_cmpstr(back->lang, ==, tc->lang);
	g_assert_cmpstr(back->filename, ==, tc->filename);
}

/* serialize with a ref and without; codechat_message_build is what both
 * use, so a builder-made object is the same message */
static void
test_message_build(void)
{
	g_autoptr(CodechatMessage) msg = codechat_message_new();
	g_autoptr(JsonBuilder) builder = json_builder_new();
	g_autofree gchar *built = NULL;
	g_autofree gchar *serialized = NULL;

	msg->room = g_strdup("general");
	msg->from = g_strdup("alice");
	msg->id = 1;
	msg->ts = TS_2026 * G_USEC_PER_SEC;
	msg->text = g_strdup("hi");
	json_builder_begin_object(builder);
	codechat_message_build(msg, builder);
	json_builder_end_object(builder);
	built = codechat_builder_to_string(builder);
	serialized = codechat_message_serialize(msg, NULL);
	g_assert_cmpstr(built, ==, serialized);

	/* ref counting */
	g_assert_true(codechat_message_ref(msg) == msg);
	codechat_message_unref(msg);
	g_assert_cmpstr(msg->text, ==, "hi");
}

typedef struct {
	const gchar *path;
	const gchar *json;
	gboolean ok;
	CodechatKind kind; /* expected when ok */
} MessageParseCase;

static const MessageParseCase message_parse_cases[] = {
    {"message-parse/minimal",
     "{\"type\":\"message\",\"room\":\"a\",\"id\":1,\"from\":\"x\",\"text\":\"t\"}",
     TRUE,
     CODECHAT_KIND_TEXT},
    {"message-parse/unknown-kind",
     "{\"type\":\"message\",\"room\":\"a\",\"id\":1,\"from\":\"x\",\"text\":\"t\",\"kind\":"
     "\"poem\"}",
     TRUE,
     CODECHAT_KIND_TEXT},
    {"message-parse/code",
     "{\"type\":\"message\",\"to\":\"b\",\"id\":1,\"from\":\"x\",\"text\":\"t\",\"kind\":\"code\"}",
     TRUE,
     CODECHAT_KIND_CODE},
    {"message-parse/not-message",
     "{\"type\":\"error\",\"room\":\"a\",\"id\":1,\"from\":\"x\",\"text\":\"t\"}",
     FALSE,
     0},
    {"message-parse/no-type", "{\"room\":\"a\",\"id\":1,\"from\":\"x\",\"text\":\"t\"}", FALSE, 0},
    {"message-parse/room-and-to",
     "{\"type\":\"message\",\"room\":\"a\",\"to\":\"b\",\"id\":1,\"from\":\"x\",\"text\":\"t\"}",
     FALSE,
     0},
    {"message-parse/neither",
     "{\"type\":\"message\",\"id\":1,\"from\":\"x\",\"text\":\"t\"}",
     FALSE,
     0},
    {"message-parse/no-id",
     "{\"type\":\"message\",\"room\":\"a\",\"from\":\"x\",\"text\":\"t\"}",
     FALSE,
     0},
    {"message-parse/id-0",
     "{\"type\":\"message\",\"room\":\"a\",\"id\":0,\"from\":\"x\",\"text\":\"t\"}",
     FALSE,
     0},
    {"message-parse/id-string",
     "{\"type\":\"message\",\"room\":\"a\",\"id\":\"1\",\"from\":\"x\",\"text\":\"t\"}",
     FALSE,
     0},
    {"message-parse/no-from",
     "{\"type\":\"message\",\"room\":\"a\",\"id\":1,\"text\":\"t\"}",
     FALSE,
     0},
    {"message-parse/no-text",
     "{\"type\":\"message\",\"room\":\"a\",\"id\":1,\"from\":\"x\"}",
     FALSE,
     0},
};

static void
test_message_parse(gconstpointer data)
{
	const MessageParseCase *tc = data;
	g_autoptr(JsonNode) node = json_from_string(tc->json, NULL);
	g_autoptr(CodechatMessage) msg = NULL;
	g_autoptr(GError) error = NULL;

	assert_nonnull_or_return(node);
	msg = codechat_message_from_json(json_node_get_object(node), &error);
	if (tc->ok) {
		g_assert_no_error(error);
		assert_nonnull_or_return(msg);
		g_assert_cmpint(msg->kind, ==, tc->kind);
	} else {
		g_assert_error(error, CODECHAT_ERROR, CODECHAT_ERROR_BAD_REQUEST);
		g_assert_null(msg);
	}
}

static void
test_version(void)
{
	g_assert_cmpuint(strlen(CODECHAT_SUBPROTOCOL), >, 0);
	g_assert_cmpstr(CODECHAT_SUBPROTOCOL, ==, "codechat.v1");
	g_assert_cmpstr(CODECHAT_WS_PATH, ==, "/v1/ws");
	g_assert_cmpint(CODECHAT_MAX_PAGE, ==, 500);
	g_assert_cmpint(CODECHAT_DEFAULT_PAGE, ==, 50);
	g_assert_cmpint(CODECHAT_DEFAULT_RATE, ==, 20);
	g_assert_cmpint(CODECHAT_DEFAULT_BURST, ==, 50);
	g_assert_cmpint(CODECHAT_DEFAULT_MAX_FRAME, ==, 256 * 1024);
	g_assert_cmpint(CODECHAT_DEFAULT_KEEPALIVE, ==, 30);
	g_assert_cmpint(CODECHAT_DEFAULT_HELLO_TIMEOUT, ==, 10);
}

#define ADD_TABLE(cases, func)                                                                     \
	G_STMT_START                                                                               \
	{                                                                                          \
		for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {                                  \
			g_autofree gchar *path =                                                   \
			    g_strconcat("/codechat/protocol/", cases[i].path, NULL);               \
			g_test_add_data_func(path, &cases[i], func);                               \
		}                                                                                  \
	}                                                                                          \
	G_STMT_END

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_set_nonfatal_assertions();

	ADD_TABLE(validate_cases, test_validate);
	ADD_TABLE(nick_cases, test_nick_fold);
	ADD_TABLE(request_cases, test_request);
	ADD_TABLE(request_type_cases, test_request_type);
	g_test_add_func("/codechat/protocol/request/parser-reuse", test_request_parser_reuse);
	g_test_add_func("/codechat/protocol/request/length", test_request_length);
	g_test_add_func("/codechat/protocol/request/deep-nesting", test_request_deep_nesting);
	g_test_add_func("/codechat/protocol/request/some-nesting", test_request_some_nesting);
	g_test_add_func("/codechat/protocol/request/type-names", test_request_type_names);
	g_test_add_func("/codechat/protocol/kind-names", test_kind_names);

	for (gsize i = 0; i < G_N_ELEMENTS(error_cases); i++) {
		const gchar *name = error_cases[i].wire != NULL ? error_cases[i].wire
								: error_cases[i].dbus;
		g_autofree gchar *code_path =
		    g_strconcat("/codechat/protocol/error-code/", name, NULL);
		g_autofree gchar *dbus_path =
		    g_strconcat("/codechat/protocol/dbus-error/", name, NULL);

		g_test_add_data_func(code_path, &error_cases[i], test_error_code);
		g_test_add_data_func(dbus_path, &error_cases[i], test_error_dbus);
	}
	g_test_add_func("/codechat/protocol/error-code/unknown", test_error_code_unknown);
	g_test_add_func("/codechat/protocol/error-frame", test_error_frame);

	ADD_TABLE(timestamp_cases, test_timestamp);
	g_test_add_func("/codechat/protocol/timestamp/shape", test_timestamp_shape);
	g_test_add_func("/codechat/protocol/timestamp/round-trip", test_timestamp_round_trip);
	g_test_add_func("/codechat/protocol/timestamp/parse", test_timestamp_parse);

	ADD_TABLE(message_cases, test_message_round_trip);
	g_test_add_func("/codechat/protocol/message/build", test_message_build);
	ADD_TABLE(message_parse_cases, test_message_parse);
	g_test_add_func("/codechat/protocol/constants", test_version);

	return g_test_run();
}
