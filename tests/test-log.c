/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "codechat-log.h"
#include "codechat-protocol.h"

/*
 * Unit tests of the shared log writer, on its output: the text line and
 * the JSON object that codechat_log_format_record() makes of a record,
 * their escaping, and, in subprocesses whose stderr the test reads, what
 * the installed writer prints: the format that CODECHAT_LOG_FORMAT picks,
 * which debug records -v and G_MESSAGES_DEBUG let through, the journal
 * falling back to text.
 */

#define FIELD(k, v)                                                                                \
	{                                                                                          \
		(k), (v), -1                                                                       \
	}

/* a record as g_log_structured() gives it to the writer, and then some */
static const GLogField joined_fields[] = {
    FIELD("MESSAGE", "alice joined general"),
    FIELD("PRIORITY", "6"),
    FIELD("GLIB_DOMAIN", "codechatd"),
    FIELD("CODE_FILE", "codechat-hub.c"),
    FIELD("CODE_LINE", "42"),
    FIELD("CODE_FUNC", "handle_join"),
    FIELD("CODECHAT_NICK", "alice"),
    FIELD("CODECHAT_ROOM", "general"),
    FIELD("CODECHAT_MSGID", "17"),
};

static gchar *
format_one(CodechatLogFormat format, GLogLevelFlags level, const GLogField *fields, gsize n)
{
	gchar *line = codechat_log_format_record(format, level, fields, n);

	g_assert_nonnull(line);
	/* one record, one line, whatever was in it */
	g_assert_null(strchr(line, '\n'));
	g_assert_null(strchr(line, '\r'));
	g_assert_true(g_utf8_validate(line, -1, NULL));
	return line;
}

static JsonObject *
parse_object(const gchar *line)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) error = NULL;
	JsonNode *root;

	if (!json_parser_load_from_data(parser, line, -1, &error))
		g_error("not JSON: %s: %s", error->message, line);
	root = json_parser_get_root(parser);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
	return json_object_ref(json_node_get_object(root));
}

static void
test_text(void)
{
	g_autofree gchar *line = format_one(CODECHAT_LOG_FORMAT_TEXT,
					    G_LOG_LEVEL_INFO,
					    joined_fields,
					    G_N_ELEMENTS(joined_fields));

	/* the time of day, the level, the domain, the message, then the
	 * CODECHAT_* fields in the order given and none of the others */
	if (!g_regex_match_simple("^[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3} info codechatd: "
				  "alice joined general "
				  "CODECHAT_NICK=alice CODECHAT_ROOM=general CODECHAT_MSGID=17$",
				  line,
				  0,
				  0))
		g_error("unexpected text line: %s", line);
}

static void
test_text_no_domain(void)
{
	const GLogField fields[] = {FIELD("MESSAGE", "hello")};
	g_autofree gchar *line =
	    format_one(CODECHAT_LOG_FORMAT_TEXT, G_LOG_LEVEL_MESSAGE, fields, G_N_ELEMENTS(fields));

	/* no GLIB_DOMAIN: the program's name, "codechat" before init */
	g_assert_true(g_str_has_suffix(line, " message codechat: hello"));
}

static void
test_json(void)
{
	g_autofree gchar *line = format_one(CODECHAT_LOG_FORMAT_JSON,
					    G_LOG_LEVEL_INFO,
					    joined_fields,
					    G_N_ELEMENTS(joined_fields));
	g_autoptr(JsonObject) obj = parse_object(line);
	g_autoptr(GList) members = json_object_get_members(obj);
	const gchar *expected[] = {"ts",
				   "level",
				   "domain",
				   "message",
				   "CODECHAT_NICK",
				   "CODECHAT_ROOM",
				   "CODECHAT_MSGID"};
	gint64 ts = 0;
	gint64 now = g_get_real_time();
	guint i = 0;

	/* exactly these keys, in this order */
	g_assert_cmpuint(g_list_length(members), ==, G_N_ELEMENTS(expected));
	for (GList *l = members; l != NULL; l = l->next, i++)
		g_assert_cmpstr(l->data, ==, expected[i]);

	g_assert_true(codechat_timestamp_parse(json_object_get_string_member(obj, "ts"), &ts));
	g_assert_cmpint(ts, <=, now);
	g_assert_cmpint(ts, >, now - 60 * G_USEC_PER_SEC);
	g_assert_cmpstr(json_object_get_string_member(obj, "level"), ==, "info");
	g_assert_cmpstr(json_object_get_string_member(obj, "domain"), ==, "codechatd");
	g_assert_cmpstr(json_object_get_string_member(obj, "message"), ==, "alice joined general");
	g_assert_cmpstr(json_object_get_string_member(obj, "CODECHAT_NICK"), ==, "alice");
	g_assert_cmpstr(json_object_get_string_member(obj, "CODECHAT_ROOM"), ==, "general");
	g_assert_cmpstr(json_object_get_string_member(obj, "CODECHAT_MSGID"), ==, "17");
}

static void
test_json_escaping(void)
{
	const gchar *nasty = "say \"hi\"\\ \n\r\t\x01\x1b[31m\x7f \xc2\x85 \xe2\x80\xa8 é";
	const GLogField fields[] = {
	    FIELD("MESSAGE", nasty),
	    FIELD("GLIB_DOMAIN", "codechatd"),
	    FIELD("CODECHAT_NICK", "a\"b"),
	    /* not UTF-8: replaced, so that the line stays JSON */
	    FIELD("CODECHAT_PEER", "x\xff\xfey"),
	};
	g_autofree gchar *line =
	    format_one(CODECHAT_LOG_FORMAT_JSON, G_LOG_LEVEL_DEBUG, fields, G_N_ELEMENTS(fields));
	g_autoptr(JsonObject) obj = parse_object(line);

	/* every control character escaped, none raw */
	for (const gchar *p = line; *p != '\0'; p++)
		g_assert_cmpint((guchar)*p, >=, 0x20);
	g_assert_null(strstr(line, "\x7f"));
	g_assert_null(strstr(line, "\xc2\x85"));
	g_assert_null(strstr(line, "\xe2\x80\xa8"));
	g_assert_nonnull(strstr(line, "\\n\\r\\t\\u0001\\u001b[31m\\u007f \\u0085 \\u2028 é"));
	/* and what a parser reads back is what was logged */
	g_assert_cmpstr(json_object_get_string_member(obj, "message"), ==, nasty);
	g_assert_cmpstr(json_object_get_string_member(obj, "CODECHAT_NICK"), ==, "a\"b");
	g_assert_cmpstr(json_object_get_string_member(obj, "CODECHAT_PEER"),
			==,
			"x\xef\xbf\xbd\xef\xbf\xbdy");
}

static void
test_text_injection(void)
{
	const GLogField fields[] = {
	    FIELD("MESSAGE", "bad frame\n12:00:00.000 warning codechatd: forged\x1b]0;x\x07"),
	    FIELD("GLIB_DOMAIN", "codechatd"),
	    FIELD("CODECHAT_NICK", "eve\nCODECHAT_ROOM=admin"),
	    FIELD("CODECHAT_ROOM", "a b"),
	    FIELD("CODECHAT_PEER", "say \"x\" \\ \t"),
	    FIELD("CODECHAT_MSGID", ""),
	};
	g_autofree gchar *line =
	    format_one(CODECHAT_LOG_FORMAT_TEXT, G_LOG_LEVEL_DEBUG, fields, G_N_ELEMENTS(fields));

	g_assert_null(strchr(line, '\x1b'));
	g_assert_null(strchr(line, '\x07'));
	g_assert_true(g_str_has_suffix(
	    line,
	    " debug codechatd: bad frame\\n12:00:00.000 warning codechatd: forged\\x1b]0;x\\x07"
	    " CODECHAT_NICK=\"eve\\nCODECHAT_ROOM=admin\""
	    " CODECHAT_ROOM=\"a b\""
	    " CODECHAT_PEER=\"say \\\"x\\\" \\\\ \\t\""
	    " CODECHAT_MSGID=\"\""));
}

static void
test_text_not_utf8(void)
{
	const GLogField fields[] = {
	    FIELD("MESSAGE", "bad \xff\xc3 bytes \xc2\x9b"),
	    FIELD("GLIB_DOMAIN", "codechatd"),
	};
	g_autofree gchar *line =
	    format_one(CODECHAT_LOG_FORMAT_TEXT, G_LOG_LEVEL_DEBUG, fields, G_N_ELEMENTS(fields));

	g_assert_true(g_str_has_suffix(line, "codechatd: bad \\xff\\xc3 bytes \\u009b"));
}

static void
test_lengths(void)
{
	/* values that are not NUL-terminated: only @length bytes count */
	const gchar buf[] = "generalXXXX";
	const gchar msg[] = "hello worldYYYY";
	const gchar nul[] = {'a', '\0', 'b'};
	const GLogField fields[] = {
	    {"MESSAGE", msg, 11},
	    {"GLIB_DOMAIN", "codechatdZZ", 9},
	    {"CODECHAT_ROOM", buf, 7},
	    {"CODECHAT_NICK", nul, 3},
	    {"CODECHAT_PEER", "", 0},
	};
	g_autofree gchar *text =
	    format_one(CODECHAT_LOG_FORMAT_TEXT, G_LOG_LEVEL_INFO, fields, G_N_ELEMENTS(fields));
	g_autofree gchar *json =
	    format_one(CODECHAT_LOG_FORMAT_JSON, G_LOG_LEVEL_INFO, fields, G_N_ELEMENTS(fields));
	g_autoptr(JsonObject) obj = parse_object(json);
	const gchar *nick;

	g_assert_true(g_str_has_suffix(text,
				       " info codechatd: hello world CODECHAT_ROOM=general "
				       "CODECHAT_NICK=\"a\\x00b\" CODECHAT_PEER=\"\""));
	g_assert_cmpstr(json_object_get_string_member(obj, "domain"), ==, "codechatd");
	g_assert_cmpstr(json_object_get_string_member(obj, "message"), ==, "hello world");
	g_assert_cmpstr(json_object_get_string_member(obj, "CODECHAT_ROOM"), ==, "general");
	g_assert_cmpstr(json_object_get_string_member(obj, "CODECHAT_PEER"), ==, "");
	g_assert_nonnull(strstr(json, "\"CODECHAT_NICK\":\"a\\u0000b\""));
	nick = json_object_get_string_member(obj, "CODECHAT_NICK");
	g_assert_nonnull(nick);
	g_assert_cmpint(nick[0], ==, 'a');
}

typedef struct {
	GLogLevelFlags level;
	const gchar *name;
} LevelCase;

static const LevelCase level_cases[] = {
    {G_LOG_LEVEL_ERROR, "error"},
    {G_LOG_LEVEL_CRITICAL, "critical"},
    {G_LOG_LEVEL_WARNING, "warning"},
    {G_LOG_LEVEL_MESSAGE, "message"},
    {G_LOG_LEVEL_INFO, "info"},
    {G_LOG_LEVEL_DEBUG, "debug"},
    /* the flags that may come with a level do not change its name */
    {G_LOG_LEVEL_CRITICAL | G_LOG_FLAG_FATAL, "critical"},
};

static void
test_level_names(void)
{
	const GLogField fields[] = {FIELD("MESSAGE", "m"), FIELD("GLIB_DOMAIN", "d")};

	for (gsize i = 0; i < G_N_ELEMENTS(level_cases); i++) {
		const LevelCase *c = &level_cases[i];
		g_autofree gchar *text =
		    format_one(CODECHAT_LOG_FORMAT_TEXT, c->level, fields, G_N_ELEMENTS(fields));
		g_autofree gchar *json =
		    format_one(CODECHAT_LOG_FORMAT_JSON, c->level, fields, G_N_ELEMENTS(fields));
		g_autoptr(JsonObject) obj = parse_object(json);
		g_autofree gchar *middle = g_strdup_printf(" %s d: m", c->name);

		g_assert_true(g_str_has_suffix(text, middle));
		g_assert_cmpstr(json_object_get_string_member(obj, "level"), ==, c->name);
	}
}

static void
test_format_names(void)
{
	CodechatLogFormat format = CODECHAT_LOG_FORMAT_TEXT;

	g_assert_true(codechat_log_format_from_string("json", &format));
	g_assert_cmpint(format, ==, CODECHAT_LOG_FORMAT_JSON);
	g_assert_true(codechat_log_format_from_string("journal", &format));
	g_assert_cmpint(format, ==, CODECHAT_LOG_FORMAT_JOURNAL);
	g_assert_true(codechat_log_format_from_string("auto", &format));
	g_assert_cmpint(format, ==, CODECHAT_LOG_FORMAT_AUTO);
	g_assert_true(codechat_log_format_from_string("text", &format));
	g_assert_cmpint(format, ==, CODECHAT_LOG_FORMAT_TEXT);
	g_assert_false(codechat_log_format_from_string("JSON", &format));
	g_assert_false(codechat_log_format_from_string("", &format));
	g_assert_false(codechat_log_format_from_string(NULL, &format));
	g_assert_cmpint(format, ==, CODECHAT_LOG_FORMAT_TEXT);
}

/*
 * The writer itself, in subprocesses: each case's child sets up its
 * environment, installs the writer and logs; the parent reads what the
 * child wrote on stderr.
 */

static gchar *child_stderr_path = NULL;

/* reruns the current test in a subprocess whose stderr goes to a file,
 * and returns that file's lines: GLib 2.74 can match the stderr of a
 * child against a pattern but not hand it over */
static GStrv
run_child(gboolean expect_pass)
{
	g_autofree gchar *contents = NULL;
	g_autoptr(GError) error = NULL;

	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	if (expect_pass)
		g_test_trap_assert_passed();
	else
		g_test_trap_assert_failed();
	if (!g_file_get_contents(child_stderr_path, &contents, NULL, &error))
		g_error("%s", error->message);
	return g_strsplit(contents, "\n", -1);
}

/* in the child: stderr to the file the parent reads */
static void
child_setup(const gchar *log_format_env, const gchar *messages_debug)
{
	g_assert_nonnull(freopen(child_stderr_path, "w", stderr));
	if (log_format_env != NULL)
		g_setenv("CODECHAT_LOG_FORMAT", log_format_env, TRUE);
	else
		g_unsetenv("CODECHAT_LOG_FORMAT");
	if (messages_debug != NULL)
		g_setenv("G_MESSAGES_DEBUG", messages_debug, TRUE);
	else
		g_unsetenv("G_MESSAGES_DEBUG");
}

static void
test_env_json(void)
{
	g_auto(GStrv) lines = NULL;
	g_autoptr(JsonObject) obj = NULL;

	if (g_test_subprocess()) {
		child_setup("json", NULL);
		codechat_log_init("codechatd", CODECHAT_LOG_FORMAT_AUTO);
		g_assert_cmpint(codechat_log_get_format(), ==, CODECHAT_LOG_FORMAT_JSON);
		codechat_message(CODECHAT_LOG_FIELDS(.room = "general", .msgid = 5),
				 "stored %d",
				 5);
		return;
	}
	lines = run_child(TRUE);
	g_assert_cmpuint(g_strv_length(lines), ==, 2);
	g_assert_cmpstr(lines[1], ==, "");
	obj = parse_object(lines[0]);
	g_assert_cmpstr(json_object_get_string_member(obj, "level"), ==, "message");
	g_assert_cmpstr(json_object_get_string_member(obj, "domain"), ==, "codechat-test");
	g_assert_cmpstr(json_object_get_string_member(obj, "message"), ==, "stored 5");
	g_assert_cmpstr(json_object_get_string_member(obj, "CODECHAT_ROOM"), ==, "general");
	g_assert_cmpstr(json_object_get_string_member(obj, "CODECHAT_MSGID"), ==, "5");
	/* the fields that are not set are left out */
	g_assert_false(json_object_has_member(obj, "CODECHAT_NICK"));
	g_assert_false(json_object_has_member(obj, "CODECHAT_PEER"));
}

static void
test_env_flag_wins(void)
{
	g_auto(GStrv) lines = NULL;

	if (g_test_subprocess()) {
		child_setup("json", NULL);
		/* the program's --log-format=text */
		codechat_log_init("codechat", CODECHAT_LOG_FORMAT_TEXT);
		codechat_message(NULL, "plain");
		return;
	}
	lines = run_child(TRUE);
	g_assert_cmpuint(g_strv_length(lines), ==, 2);
	g_assert_true(g_str_has_suffix(lines[0], " message codechat-test: plain"));
	g_assert_cmpint(lines[0][0], !=, '{');
}

static void
test_env_bad(void)
{
	g_auto(GStrv) lines = NULL;

	if (g_test_subprocess()) {
		child_setup("xml\n", NULL);
		codechat_log_init("codechat", CODECHAT_LOG_FORMAT_AUTO);
		g_assert_cmpint(codechat_log_get_format(), ==, CODECHAT_LOG_FORMAT_TEXT);
		codechat_message(NULL, "still logging");
		return;
	}
	/* ignored, with a word about it (escaped like any value), in text */
	lines = run_child(TRUE);
	g_assert_cmpuint(g_strv_length(lines), ==, 3);
	g_assert_true(
	    g_str_has_suffix(lines[0],
			     " message codechat-shared: CODECHAT_LOG_FORMAT=xml\\n is not "
			     "text, json, journal or auto: ignored"));
	g_assert_true(g_str_has_suffix(lines[1], " message codechat-test: still logging"));
}

static void
test_journal_fallback(void)
{
	g_auto(GStrv) lines = NULL;

	if (g_test_subprocess()) {
		child_setup("journal", NULL);
		codechat_log_init("codechatd", CODECHAT_LOG_FORMAT_AUTO);
		g_assert_cmpint(codechat_log_get_format(), ==, CODECHAT_LOG_FORMAT_JOURNAL);
		codechat_message(CODECHAT_LOG_FIELDS(.nick = "alice"), "to the journal");
		return;
	}
	if (g_file_test("/run/systemd/journal/socket", G_FILE_TEST_EXISTS)) {
		g_test_skip("a journal runs here: the record would go there");
		return;
	}
	lines = run_child(TRUE);
	g_assert_cmpuint(g_strv_length(lines), ==, 2);
	g_assert_true(
	    g_str_has_suffix(lines[0],
			     " message codechat-test: to the journal CODECHAT_NICK=alice"));
}

static void
test_fatal_warnings(void)
{
	g_auto(GStrv) lines = NULL;

	if (g_test_subprocess()) {
		/* g_test_init() made warnings fatal, as G_DEBUG=fatal-warnings
		 * does: the writer must honour that after writing */
		child_setup("text", NULL);
		codechat_log_init("codechat", CODECHAT_LOG_FORMAT_AUTO);
		codechat_warning(NULL, "this is fatal");
		codechat_message(NULL, "not reached");
		return;
	}
	lines = run_child(FALSE);
	g_assert_true(g_str_has_suffix(lines[0], " warning codechat-test: this is fatal"));
	for (guint i = 0; lines[i] != NULL; i++)
		g_assert_null(strstr(lines[i], "not reached"));
}

typedef struct {
	const gchar *name;
	const gchar *messages_debug; /* G_MESSAGES_DEBUG, NULL for unset */
	gboolean verbose;	     /* -v: g_log_set_debug_enabled(TRUE) */
	gboolean own_debug;	     /* codechatd's debug and info are shown */
	gboolean other_debug;	     /* another library's debug is shown */
} DebugCase;

static const DebugCase debug_cases[] = {
    {"default", NULL, FALSE, FALSE, FALSE},
    {"verbose", NULL, TRUE, TRUE, FALSE},
    {"messages-debug-all", "all", FALSE, TRUE, TRUE},
    {"messages-debug-domain", "codechatd", FALSE, TRUE, FALSE},
    {"messages-debug-other", "libsoup", FALSE, FALSE, TRUE},
    {"messages-debug-list", "libsoup,codechatd", FALSE, TRUE, TRUE},
    {"verbose-and-all", "all", TRUE, TRUE, TRUE},
    {"verbose-and-other", "libsoup", TRUE, TRUE, TRUE},
};

static gboolean
lines_contain(GStrv lines, const gchar *text)
{
	for (guint i = 0; lines[i] != NULL; i++) {
		if (strstr(lines[i], text) != NULL)
			return TRUE;
	}
	return FALSE;
}

static void
test_debug(gconstpointer data)
{
	const DebugCase *c = data;
	g_auto(GStrv) lines = NULL;

	if (g_test_subprocess()) {
		child_setup("text", c->messages_debug);
		codechat_log_init("codechatd", CODECHAT_LOG_FORMAT_AUTO);
		if (c->verbose)
			g_log_set_debug_enabled(TRUE);
		codechat_log_structured("codechatd",
					G_LOG_LEVEL_DEBUG,
					__FILE__,
					G_STRINGIFY(__LINE__),
					G_STRFUNC,
					NULL,
					"own debug");
		codechat_log_structured("codechatd",
					G_LOG_LEVEL_INFO,
					__FILE__,
					G_STRINGIFY(__LINE__),
					G_STRFUNC,
					NULL,
					"own info");
		codechat_log_structured("codechatd",
					G_LOG_LEVEL_MESSAGE,
					__FILE__,
					G_STRINGIFY(__LINE__),
					G_STRFUNC,
					NULL,
					"own message");
		/* as another library logs, with GLib's own macros */
		g_log_structured("libsoup", G_LOG_LEVEL_DEBUG, "MESSAGE", "other debug");
		g_log_structured("libsoup", G_LOG_LEVEL_MESSAGE, "MESSAGE", "other message");
		return;
	}
	lines = run_child(TRUE);
	g_assert_true(lines_contain(lines, " message codechatd: own message"));
	g_assert_true(lines_contain(lines, " message libsoup: other message"));
	g_assert_cmpint(lines_contain(lines, " debug codechatd: own debug"), ==, c->own_debug);
	g_assert_cmpint(lines_contain(lines, " info codechatd: own info"), ==, c->own_debug);
	g_assert_cmpint(lines_contain(lines, " debug libsoup: other debug"), ==, c->other_debug);
}

int
main(int argc, char **argv)
{
	g_autofree gchar *tmpdir = NULL;
	gint status;

	g_test_init(&argc, &argv, NULL);

	/* the child's stderr, one file per process tree (the child gets it
	 * through the environment) */
	if (g_getenv("CODECHAT_TEST_LOG_STDERR") == NULL) {
		g_autoptr(GError) error = NULL;

		tmpdir = g_dir_make_tmp("codechat-test-log-XXXXXX", &error);
		g_assert_no_error(error);
		child_stderr_path = g_build_filename(tmpdir, "stderr", NULL);
		g_setenv("CODECHAT_TEST_LOG_STDERR", child_stderr_path, TRUE);
	} else {
		child_stderr_path = g_strdup(g_getenv("CODECHAT_TEST_LOG_STDERR"));
	}

	g_test_add_func("/codechat/log/text", test_text);
	g_test_add_func("/codechat/log/text/no-domain", test_text_no_domain);
	g_test_add_func("/codechat/log/text/injection", test_text_injection);
	g_test_add_func("/codechat/log/text/not-utf8", test_text_not_utf8);
	g_test_add_func("/codechat/log/json", test_json);
	g_test_add_func("/codechat/log/json/escaping", test_json_escaping);
	g_test_add_func("/codechat/log/lengths", test_lengths);
	g_test_add_func("/codechat/log/level-names", test_level_names);
	g_test_add_func("/codechat/log/format-names", test_format_names);
	g_test_add_func("/codechat/log/writer/env-json", test_env_json);
	g_test_add_func("/codechat/log/writer/env-flag-wins", test_env_flag_wins);
	g_test_add_func("/codechat/log/writer/env-bad", test_env_bad);
	g_test_add_func("/codechat/log/writer/journal-fallback", test_journal_fallback);
	g_test_add_func("/codechat/log/writer/fatal-warnings", test_fatal_warnings);
	for (gsize i = 0; i < G_N_ELEMENTS(debug_cases); i++) {
		g_autofree gchar *path =
		    g_strconcat("/codechat/log/writer/debug/", debug_cases[i].name, NULL);
		g_test_add_data_func(path, &debug_cases[i], test_debug);
	}

	status = g_test_run();
	if (tmpdir != NULL) {
		g_unlink(child_stderr_path);
		g_rmdir(tmpdir);
	}
	g_free(child_stderr_path);
	return status;
}
