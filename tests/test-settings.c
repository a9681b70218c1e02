/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "codechat-test-client.h"
#include "codechat-test-daemon.h"

/* The client's settings through the real `codechat` binary: GSettings with
 * the keyfile backend in a private XDG_CONFIG_HOME (a real backend that
 * persists across processes, as dconf does), the schema compiled by the
 * build, and a real codechatd where the client must connect. */

typedef struct {
	CodechatTestDaemon *daemon; /* (owned) (nullable) */
	gchar *config_home;	    /* (owned) */
	gchar *env_home;	    /* (owned) XDG_CONFIG_HOME=… */
	const gchar *env[8];	    /* the environment of every run */
} Fixture;

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	gboolean with_daemon = GPOINTER_TO_INT(data);

	f->config_home = g_dir_make_tmp("codechat-settings-XXXXXX", &error);
	g_assert_no_error(error);
	f->env_home = g_strdup_printf("XDG_CONFIG_HOME=%s", f->config_home);
	f->env[0] = f->env_home;
	f->env[1] = "GSETTINGS_BACKEND=keyfile";
	f->env[2] = NULL;
	/* the daemon dies with the test (PR_SET_PDEATHSIG) if it aborts */
	if (with_daemon)
		f->daemon = codechat_test_daemon_start(NULL);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	if (f->daemon != NULL) {
		g_assert_cmpint(codechat_test_daemon_stop(f->daemon), ==, 0);
		g_clear_pointer(&f->daemon, codechat_test_daemon_free);
	}
	codechat_test_rm_rf(f->config_home);
	g_free(f->config_home);
	g_free(f->env_home);
}

/* the fixture's environment and @extra (KEY=VALUE, %NULL-terminated) */
static GStrv
env_with(Fixture *f, const gchar *const *extra)
{
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new();

	g_strv_builder_addv(builder, (const gchar **)f->env);
	if (extra != NULL)
		g_strv_builder_addv(builder, (const gchar **)extra);
	return g_strv_builder_end(builder);
}

#define RUN(f, extra, input, out, err, ...)                                                        \
	({                                                                                         \
		g_auto(GStrv) run_env_ = env_with((f), (extra));                                   \
		codechat_test_client_run((const gchar *const *)run_env_,                           \
					 (input),                                                  \
					 (out),                                                    \
					 (err),                                                    \
					 __VA_ARGS__,                                              \
					 NULL);                                                    \
	})

static gchar *
keyfile_contents(Fixture *f)
{
	g_autofree gchar *path =
	    g_build_filename(f->config_home, "glib-2.0", "settings", "keyfile", NULL);
	gchar *contents = NULL;

	if (!g_file_get_contents(path, &contents, NULL, NULL))
		return g_strdup("");
	return contents;
}

static gchar *
tokens_path(Fixture *f)
{
	return g_build_filename(f->config_home, "codechat", "tokens", NULL);
}

/* what the client resolved, from its -v line "settings: server …" */
typedef struct {
	gchar *server;
	gchar *nick;
	gchar *room;
	gchar *color;
	gchar *notify;
	guint history_limit;
} Resolved;

static void
resolved_clear(Resolved *r)
{
	g_free(r->server);
	g_free(r->nick);
	g_free(r->room);
	g_free(r->color);
	g_free(r->notify);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Resolved, resolved_clear)

static void
resolve(Fixture *f, const gchar *const *extra, const gchar *flag, Resolved *r)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GRegex) regex = NULL;
	g_autoptr(GMatchInfo) match = NULL;
	g_autofree gchar *limit = NULL;
	gint status;

	/* config get runs no connection: the settings alone */
	if (flag != NULL)
		status = RUN(f, extra, NULL, &out, &err, "-v", flag, "config", "get", "color");
	else
		status = RUN(f, extra, NULL, &out, &err, "-v", "config", "get", "color");
	g_assert_cmpint(status, ==, 0);
	regex = g_regex_new("settings: server (\\S+), nick (\\S+), default room (\\S+), color "
			    "(\\S+), notify (\\S+), history-limit (\\d+)",
			    0,
			    0,
			    NULL);
	g_assert_true(g_regex_match(regex, err, 0, &match));
	r->server = g_match_info_fetch(match, 1);
	r->nick = g_match_info_fetch(match, 2);
	r->room = g_match_info_fetch(match, 3);
	r->color = g_match_info_fetch(match, 4);
	r->notify = g_match_info_fetch(match, 5);
	limit = g_match_info_fetch(match, 6);
	r->history_limit = (guint)g_ascii_strtoull(limit, NULL, 10);
}

static void
config_set(Fixture *f, const gchar *key, const gchar *value)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "config", "set", key, value), ==, 0);
}

static gchar *
config_get(Fixture *f, const gchar *key)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "config", "get", key), ==, 0);
	g_assert_true(g_str_has_suffix(out, "\n"));
	out[strlen(out) - 1] = '\0';
	return g_steal_pointer(&out);
}

/* config ---------------------------------------------------------------- */

static void
test_config_list(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_auto(GStrv) lines = NULL;
	const gchar *const keys[] =
	    {"color", "default-room", "history-limit", "nickname", "notify", "server-url", NULL};

	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "config", "list"), ==, 0);
	lines = g_strsplit(out, "\n", -1);
	g_assert_cmpuint(g_strv_length(lines), ==, 7); /* and the empty last */
	for (guint i = 0; keys[i] != NULL; i++)
		g_assert_true(g_str_has_prefix(lines[i], keys[i]));
	g_assert_nonnull(strstr(out, "server-url     ws://127.0.0.1:7373/v1/ws\n"));
	g_assert_nonnull(strstr(out, "history-limit  50\n"));
	g_assert_nonnull(strstr(out, "notify         off\n"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* --json: one object a line, with whether it is the default */
	config_set(f, "history-limit", "20");
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "--json", "config", "list"), ==, 0);
	g_assert_nonnull(
	    strstr(out, "{\"key\":\"history-limit\",\"value\":20,\"default\":false}\n"));
	g_assert_nonnull(strstr(out, "{\"key\":\"color\",\"value\":\"auto\",\"default\":true}\n"));
}

static void
test_config_set_get_reset(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *value = NULL;
	g_autofree gchar *keyfile = NULL;

	/* each run is a new process: the value is kept by the backend */
	config_set(f, "default-room", "builds");
	config_set(f, "notify", "all");
	config_set(f, "color", "never");
	config_set(f, "history-limit", "500");
	config_set(f, "nickname", "carol");
	/* a URL without a path means the protocol's endpoint */
	config_set(f, "server-url", "wss://chat.example.org:8443");
	value = config_get(f, "default-room");
	g_assert_cmpstr(value, ==, "builds");
	g_clear_pointer(&value, g_free);
	value = config_get(f, "server-url");
	g_assert_cmpstr(value, ==, "wss://chat.example.org:8443/v1/ws");
	g_clear_pointer(&value, g_free);
	value = config_get(f, "history-limit");
	g_assert_cmpstr(value, ==, "500");
	g_clear_pointer(&value, g_free);

	keyfile = keyfile_contents(f);
	g_assert_nonnull(strstr(keyfile, "[io/github/codechat/Codechat]"));
	g_assert_nonnull(strstr(keyfile, "default-room='builds'"));
	g_assert_nonnull(strstr(keyfile, "notify='all'"));
	g_assert_nonnull(strstr(keyfile, "nickname='carol'"));
	g_clear_pointer(&keyfile, g_free);

	/* set prints what it saved; --quiet does not */
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "config", "set", "notify", "mentions"),
			==,
			0);
	g_assert_cmpstr(out, ==, "notify         mentions\n");
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "-q", "config", "set", "notify", "all"),
			==,
			0);
	g_assert_cmpstr(out, ==, "");
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* an empty nickname means the login name again */
	config_set(f, "nickname", "");
	value = config_get(f, "nickname");
	g_assert_cmpstr(value, ==, "");
	g_clear_pointer(&value, g_free);

	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "config", "reset", "default-room"), ==, 0);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	value = config_get(f, "default-room");
	g_assert_cmpstr(value, ==, "general");
	keyfile = keyfile_contents(f);
	g_assert_null(strstr(keyfile, "default-room"));
}

static void
test_config_invalid(Fixture *f, gconstpointer data)
{
	const struct {
		const gchar *key;
		const gchar *value;
		const gchar *message;
	} cases[] = {
	    {"notify", "loud", "choose one of off, mentions, all"},
	    {"color", "blue", "choose one of auto, always, never"},
	    {"history-limit", "0", "between 1 and 500"},
	    {"history-limit", "501", "between 1 and 500"},
	    {"history-limit", "many", "takes a whole number"},
	    {"history-limit", "3x", "takes a whole number"},
	    {"server-url", "http://example.org", "is not a ws:// or wss:// URL"},
	    {"server-url", "not a url", "is not a valid server URL"},
	    {"server-url", "ws://", "names no host"},
	    {"server-url", "ws://me:secret@example.org", "holds a user name or password"},
	    {"nickname", "9lives", "not a valid value for nickname"},
	    {"nickname", "has space", "not a valid value for nickname"},
	    {"default-room", "", "not a valid value for default-room"},
	    {"default-room", "no/slash", "not a valid value for default-room"},
	    {"volume", "11", "no setting “volume”; the settings are color, default-room"},
	};
	g_autofree gchar *before = NULL;
	g_autofree gchar *after = NULL;

	config_set(f, "history-limit", "42");
	before = keyfile_contents(f);
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		g_assert_cmpint(
		    RUN(f, NULL, NULL, &out, &err, "config", "set", cases[i].key, cases[i].value),
		    ==,
		    1);
		g_assert_cmpstr(out, ==, "");
		g_assert_nonnull(strstr(err, cases[i].message));
	}
	/* nothing was written */
	after = keyfile_contents(f);
	g_assert_cmpstr(before, ==, after);

	/* usage */
	{
		const gchar *const *argvs[] = {
		    (const gchar *const[]){"config", NULL},
		    (const gchar *const[]){"config", "frob", NULL},
		    (const gchar *const[]){"config", "get", NULL},
		    (const gchar *const[]){"config", "get", "nope", NULL},
		    (const gchar *const[]){"config", "set", "notify", NULL},
		    (const gchar *const[]){"config", "list", "extra", NULL},
		};
		for (gsize i = 0; i < G_N_ELEMENTS(argvs); i++) {
			g_autofree gchar *out = NULL;
			g_autofree gchar *err = NULL;
			const gchar *const *a = argvs[i];
			gint status = RUN(f,
					  NULL,
					  NULL,
					  &out,
					  &err,
					  a[0],
					  a[1] != NULL ? a[1] : NULL,
					  a[1] != NULL ? a[2] : NULL,
					  a[1] != NULL && a[2] != NULL ? a[3] : NULL);
			g_assert_cmpint(status, ==, 1);
			g_assert_nonnull(strstr(err, "Try “codechat config --help”"));
		}
	}
}

/* no storage: GLib's memory backend keeps nothing, so config says so */
static void
test_config_memory_backend(Fixture *f, gconstpointer data)
{
	const gchar *const extra[] = {"GSETTINGS_BACKEND=memory", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "config", "set", "notify", "all"), ==, 4);
	g_assert_nonnull(strstr(err, "settings cannot be saved"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	/* reading works: the schema's defaults */
	g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "config", "get", "notify"), ==, 0);
	g_assert_cmpstr(out, ==, "off\n");
}

/* dconf writes through its D-Bus service: with no session bus the write is
 * lost, and config and init say so instead of claiming they saved */
static void
test_config_dconf_unreachable(Fixture *f, gconstpointer data)
{
	const gchar *const extra[] = {"GSETTINGS_BACKEND=dconf", "DBUS_SESSION_BUS_ADDRESS=", NULL};
	g_autofree gchar *module = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	module = g_build_filename(GIO_MODULE_DIR, "libdconfsettings.so", NULL);
	if (!g_file_test(module, G_FILE_TEST_EXISTS)) {
		g_test_skip("no dconf GSettings backend (dconf-gsettings-backend)");
		return;
	}
	g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "config", "set", "notify", "all"), ==, 4);
	g_assert_nonnull(strstr(err, "was not saved"));
	g_assert_cmpstr(out, ==, "");
}

/* without the schema the client runs on flags, environment and defaults,
 * says so once at debug level, and config explains */
static void
test_no_schema(Fixture *f, gconstpointer data)
{
	g_autofree gchar *dir = g_build_filename(f->config_home, "no-schemas", NULL);
	g_autofree gchar *schema_env = g_strdup_printf("GSETTINGS_SCHEMA_DIR=%s", dir);
	g_autofree gchar *server = g_strdup_printf("--server=%s", f->daemon->uri);
	const gchar *const extra[] = {schema_env,
				      "XDG_DATA_DIRS=/nonexistent",
				      "XDG_DATA_HOME=/nonexistent",
				      NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	const gchar *first;

	g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
	g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "config", "list"), ==, 4);
	g_assert_nonnull(strstr(err, "schema io.github.codechat.Codechat is not installed"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	g_assert_cmpint(RUN(f,
			    extra,
			    NULL,
			    &out,
			    &err,
			    "-v",
			    server,
			    "--nick",
			    "nobody",
			    "send",
			    "--room",
			    "plain",
			    "without settings"),
			==,
			0);
	first = strstr(err, "no GSettings schema io.github.codechat.Codechat");
	g_assert_nonnull(first);
	g_assert_null(strstr(first + 1, "no GSettings schema"));
	g_assert_nonnull(strstr(first, "debug"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* and quietly without -v */
	g_assert_cmpint(RUN(f,
			    extra,
			    NULL,
			    &out,
			    &err,
			    server,
			    "--nick",
			    "nobody",
			    "history",
			    "--room",
			    "plain"),
			==,
			0);
	g_assert_cmpstr(err, ==, "");
	g_assert_nonnull(strstr(out, "without settings"));
}

/* precedence ------------------------------------------------------------ */

static void
test_precedence(Fixture *f, gconstpointer data)
{
	/* the built-in defaults */
	{
		g_auto(Resolved) r = {NULL};
		resolve(f, NULL, NULL, &r);
		g_assert_cmpstr(r.server, ==, "ws://127.0.0.1:7373/v1/ws");
		g_assert_cmpstr(r.room, ==, "general");
		g_assert_cmpstr(r.color, ==, "auto");
		g_assert_cmpstr(r.notify, ==, "off");
		g_assert_cmpuint(r.history_limit, ==, 50);
		/* the login name, or "user" when it is no valid nick */
		if (g_regex_match_simple("^[A-Za-z][A-Za-z0-9_-]{0,31}$", g_get_user_name(), 0, 0))
			g_assert_cmpstr(r.nick, ==, g_get_user_name());
		else
			g_assert_cmpstr(r.nick, ==, "user");
	}

	/* GSettings over the defaults */
	config_set(f, "server-url", "ws://settings.example:1/v1/ws");
	config_set(f, "nickname", "fromsettings");
	config_set(f, "default-room", "settingsroom");
	config_set(f, "color", "always");
	config_set(f, "notify", "mentions");
	config_set(f, "history-limit", "7");
	{
		g_auto(Resolved) r = {NULL};
		resolve(f, NULL, NULL, &r);
		g_assert_cmpstr(r.server, ==, "ws://settings.example:1/v1/ws");
		g_assert_cmpstr(r.nick, ==, "fromsettings");
		g_assert_cmpstr(r.room, ==, "settingsroom");
		g_assert_cmpstr(r.color, ==, "always");
		g_assert_cmpstr(r.notify, ==, "mentions");
		g_assert_cmpuint(r.history_limit, ==, 7);
	}

	/* the environment over GSettings */
	{
		const gchar *const extra[] = {"CODECHAT_SERVER=ws://env.example:2",
					      "CODECHAT_NICK=fromenv",
					      "CODECHAT_ROOM=envroom",
					      "CODECHAT_COLOR=never",
					      "CODECHAT_NOTIFY=all",
					      "CODECHAT_HISTORY_LIMIT=9",
					      NULL};
		g_auto(Resolved) r = {NULL};
		resolve(f, extra, NULL, &r);
		g_assert_cmpstr(r.server, ==, "ws://env.example:2/v1/ws");
		g_assert_cmpstr(r.nick, ==, "fromenv");
		g_assert_cmpstr(r.room, ==, "envroom");
		g_assert_cmpstr(r.color, ==, "never");
		g_assert_cmpstr(r.notify, ==, "all");
		g_assert_cmpuint(r.history_limit, ==, 9);
	}

	/* flags over the environment */
	{
		const gchar *const extra[] = {"CODECHAT_SERVER=ws://env.example:2",
					      "CODECHAT_NICK=fromenv",
					      NULL};
		g_auto(Resolved) r = {NULL};
		g_auto(Resolved) r2 = {NULL};
		g_auto(Resolved) r3 = {NULL};
		resolve(f, extra, "--server=ws://flag.example:3", &r);
		g_assert_cmpstr(r.server, ==, "ws://flag.example:3/v1/ws");
		g_assert_cmpstr(r.nick, ==, "fromenv");
		resolve(f, extra, "--nick=fromflag", &r2);
		g_assert_cmpstr(r2.nick, ==, "fromflag");
		g_assert_cmpstr(r2.server, ==, "ws://env.example:2/v1/ws");
		resolve(f,
			(const gchar *const[]){"CODECHAT_COLOR=never", NULL},
			"--color=always",
			&r3);
		g_assert_cmpstr(r3.color, ==, "always");
	}

	/* a bad value in the environment is a usage error that names it */
	{
		const gchar *const cases[][2] = {
		    {"CODECHAT_COLOR=purple", "CODECHAT_COLOR must be auto, always or never"},
		    {"CODECHAT_NOTIFY=loud", "CODECHAT_NOTIFY must be off, mentions or all"},
		    {"CODECHAT_HISTORY_LIMIT=0", "CODECHAT_HISTORY_LIMIT must be a number from 1"},
		    {"CODECHAT_SERVER=http://x", "is not a ws:// or wss:// URL"},
		    {"CODECHAT_LOG_FORMAT=xml", "CODECHAT_LOG_FORMAT must be text or json"},
		};
		for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
			const gchar *const extra[] = {cases[i][0], NULL};
			g_autofree gchar *out = NULL;
			g_autofree gchar *err = NULL;
			g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "config", "get", "color"),
					==,
					1);
			g_assert_nonnull(strstr(err, cases[i][1]));
		}
	}
}

static gchar *
history_text(Fixture *f, const gchar *const *extra, const gchar *room, const gchar *flag)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *server = g_strdup_printf("--server=%s", f->daemon->uri);

	g_assert_cmpint(RUN(f, extra, NULL, &out, &err, server, "history", "--room", room, flag),
			==,
			0);
	return g_steal_pointer(&out);
}

static guint
count_lines(const gchar *text)
{
	guint n = 0;

	for (const gchar *p = text; *p != '\0'; p++)
		if (*p == '\n')
			n++;
	return n;
}

/* the settings change what the client does against a real server */
static void
test_precedence_effects(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *text = NULL;
	g_autofree gchar *server = g_strdup_printf("--server=%s", f->daemon->uri);

	/* server-url, nickname and default-room from GSettings */
	config_set(f, "server-url", f->daemon->uri);
	config_set(f, "nickname", "dana");
	config_set(f, "default-room", "ops");
	for (guint i = 1; i <= 6; i++) {
		g_autofree gchar *line = g_strdup_printf("line %u", i);
		g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "send", line), ==, 0);
		g_clear_pointer(&out, g_free);
		g_clear_pointer(&err, g_free);
	}
	text = history_text(f, NULL, "ops", NULL);
	g_assert_nonnull(strstr(text, "<dana> line 6"));
	g_assert_cmpuint(count_lines(text), ==, 6);
	g_clear_pointer(&text, g_free);

	/* CODECHAT_ROOM over default-room; CODECHAT_NICK over nickname */
	{
		const gchar *const extra[] = {"CODECHAT_ROOM=dev", "CODECHAT_NICK=erin", NULL};
		g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "send", "to dev"), ==, 0);
		g_clear_pointer(&out, g_free);
		g_clear_pointer(&err, g_free);
		text = history_text(f, NULL, "dev", NULL);
		g_assert_nonnull(strstr(text, "<erin> to dev"));
		g_clear_pointer(&text, g_free);
	}

	/* CODECHAT_SERVER over server-url: a closed port cannot connect */
	{
		const gchar *const extra[] = {"CODECHAT_SERVER=ws://127.0.0.1:1/v1/ws", NULL};
		g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "send", "lost"), ==, 2);
		g_assert_nonnull(strstr(err, "ws://127.0.0.1:1/v1/ws"));
		g_clear_pointer(&out, g_free);
		g_clear_pointer(&err, g_free);
		/* and --server over both */
		g_assert_cmpint(
		    RUN(f, extra, NULL, &out, &err, server, "send", "--room", "dev", "found"),
		    ==,
		    0);
		g_clear_pointer(&out, g_free);
		g_clear_pointer(&err, g_free);
	}

	/* history-limit: flag, environment, GSettings, default */
	config_set(f, "history-limit", "3");
	text = history_text(f, NULL, "ops", NULL);
	g_assert_cmpuint(count_lines(text), ==, 3);
	g_assert_nonnull(strstr(text, "line 4"));
	g_clear_pointer(&text, g_free);
	{
		const gchar *const extra[] = {"CODECHAT_HISTORY_LIMIT=2", NULL};
		text = history_text(f, extra, "ops", NULL);
		g_assert_cmpuint(count_lines(text), ==, 2);
		g_clear_pointer(&text, g_free);
		text = history_text(f, extra, "ops", "--limit=4");
		g_assert_cmpuint(count_lines(text), ==, 4);
		g_clear_pointer(&text, g_free);
	}
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "config", "reset", "history-limit"), ==, 0);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	text = history_text(f, NULL, "ops", NULL);
	g_assert_cmpuint(count_lines(text), ==, 6);
	g_clear_pointer(&text, g_free);

	/* color: the key beats NO_COLOR (a default, says no-color.org), the
	 * environment beats the key, the flag beats the environment */
	config_set(f, "color", "always");
	text = history_text(f, NULL, "ops", NULL);
	g_assert_nonnull(strstr(text, "\033["));
	g_clear_pointer(&text, g_free);
	{
		const gchar *const extra[] = {"CODECHAT_COLOR=never", NULL};
		text = history_text(f, extra, "ops", NULL);
		g_assert_null(strstr(text, "\033["));
		g_clear_pointer(&text, g_free);
		text = history_text(f, extra, "ops", "--color=always");
		g_assert_nonnull(strstr(text, "\033["));
		g_clear_pointer(&text, g_free);
	}
	/* auto: not on a pipe */
	config_set(f, "color", "auto");
	text = history_text(f, NULL, "ops", NULL);
	g_assert_null(strstr(text, "\033["));
}

/* the token --------------------------------------------------------------- */

static void
test_token_sources(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *server = g_strdup_printf("--server=%s", f->daemon->uri);
	g_autofree gchar *path = tokens_path(f);
	g_autofree gchar *keyfile = NULL;
	GStatBuf st;

	/* none yet */
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "-v", server, "--nick", "fay", "status"),
			==,
			0);
	g_assert_nonnull(strstr(err, "token: none"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* init keeps it in the file, 0600, never in GSettings */
	g_assert_cmpint(RUN(f,
			    NULL,
			    NULL,
			    &out,
			    &err,
			    "init",
			    server,
			    "--nick",
			    "fay",
			    "--token",
			    "tok-123-secret"),
			==,
			0);
	g_assert_nonnull(strstr(out, "Token saved in"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(g_stat(path, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 0777, ==, 0600);
	keyfile = keyfile_contents(f);
	g_assert_null(strstr(keyfile, "tok-123-secret"));

	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "-v", "status"), ==, 0);
	g_assert_nonnull(strstr(err, "token: from the tokens file"));
	/* a secret is never logged */
	g_assert_null(strstr(err, "tok-123-secret"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* the environment wins */
	{
		const gchar *const extra[] = {"CODECHAT_TOKEN=other", NULL};
		g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "-v", "status"), ==, 0);
		g_assert_nonnull(strstr(err, "token: from CODECHAT_TOKEN"));
		g_clear_pointer(&out, g_free);
		g_clear_pointer(&err, g_free);
	}

	/* a token is per server and nick */
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "-v", "--nick", "gus", "status"), ==, 0);
	g_assert_nonnull(strstr(err, "token: none"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* a server URL with an IPv6 address makes a valid group too: nothing
	 * there, and no critical (fatal in tests) on the way */
	g_assert_cmpint(
	    RUN(f, NULL, NULL, &out, &err, "-v", "--server=ws://[::1]:1/v1/ws", "status"),
	    ==,
	    2);
	g_assert_nonnull(strstr(err, "token: none"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* a file others can read gets a warning */
	g_assert_cmpint(g_chmod(path, 0644), ==, 0);
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "status"), ==, 0);
	g_assert_nonnull(strstr(err, "can be read by other users"));
}

/* a real Secret Service: gnome-keyring-daemon on a private session bus,
 * its login keyring created and unlocked with a password on stdin */
static void
test_token_keyring(Fixture *f, gconstpointer data)
{
	g_autoptr(GTestDBus) bus = NULL;
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GSubprocess) keyring = NULL;
	g_autoptr(GDBusConnection) connection = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *keyring_path = g_find_program_in_path("gnome-keyring-daemon");
	g_autofree gchar *data_home = g_build_filename(f->config_home, "data", NULL);
	g_autofree gchar *runtime_dir = g_build_filename(f->config_home, "run", NULL);
	g_autofree gchar *bus_env = NULL;
	g_autofree gchar *server = g_strdup_printf("--server=%s", f->daemon->uri);
	g_autofree gchar *path = tokens_path(f);
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GOutputStream) stdin_pipe = NULL;
	gboolean owned = FALSE;
	const gchar *const no_bus[] = {"DBUS_SESSION_BUS_ADDRESS=", NULL};

	if (keyring_path == NULL) {
		g_test_skip("no gnome-keyring-daemon (gnome-keyring) for a Secret Service");
		return;
	}
	bus = g_test_dbus_new(G_TEST_DBUS_NONE);
	codechat_test_dbus_up(bus);
	bus_env = g_strdup_printf("DBUS_SESSION_BUS_ADDRESS=%s", g_test_dbus_get_bus_address(bus));
	g_assert_cmpint(g_mkdir_with_parents(data_home, 0700), ==, 0);
	g_assert_cmpint(g_mkdir_with_parents(runtime_dir, 0700), ==, 0);

	/* codechat's launcher: the keyring dies with the test if it fails */
	launcher = codechat_test_client_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE |
							 G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
							 G_SUBPROCESS_FLAGS_STDERR_SILENCE,
						     NULL);
	g_subprocess_launcher_setenv(launcher,
				     "DBUS_SESSION_BUS_ADDRESS",
				     g_test_dbus_get_bus_address(bus),
				     TRUE);
	g_subprocess_launcher_setenv(launcher, "XDG_DATA_HOME", data_home, TRUE);
	g_subprocess_launcher_setenv(launcher, "XDG_RUNTIME_DIR", runtime_dir, TRUE);
	keyring = g_subprocess_launcher_spawn(launcher,
					      &error,
					      keyring_path,
					      "--foreground",
					      "--components=secrets",
					      "--unlock",
					      NULL);
	g_assert_no_error(error);
	stdin_pipe = g_object_ref(g_subprocess_get_stdin_pipe(keyring));
	g_output_stream_write_all(stdin_pipe, "test-password", 13, NULL, NULL, &error);
	g_assert_no_error(error);
	g_output_stream_close(stdin_pipe, NULL, &error);
	g_assert_no_error(error);

	connection = g_dbus_connection_new_for_address_sync(
	    g_test_dbus_get_bus_address(bus),
	    G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
		G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
	    NULL,
	    NULL,
	    &error);
	g_assert_no_error(error);
	for (guint i = 0; i < WAIT_TIMEOUT_MS / POLL_INTERVAL_MS && !owned; i++) {
		g_autoptr(GVariant) reply =
		    g_dbus_connection_call_sync(connection,
						"org.freedesktop.DBus",
						"/org/freedesktop/DBus",
						"org.freedesktop.DBus",
						"NameHasOwner",
						g_variant_new("(s)", "org.freedesktop.secrets"),
						G_VARIANT_TYPE("(b)"),
						G_DBUS_CALL_FLAGS_NONE,
						-1,
						NULL,
						&error);
		g_assert_no_error(error);
		g_variant_get(reply, "(b)", &owned);
		if (!owned)
			codechat_test_sleep_ms(POLL_INTERVAL_MS);
	}
	g_assert_true(owned);

	{
		const gchar *const extra[] = {bus_env, NULL};
		g_assert_cmpint(RUN(f,
				    extra,
				    NULL,
				    &out,
				    &err,
				    "init",
				    server,
				    "--nick",
				    "nina",
				    "--token",
				    "keyring-secret-7"),
				==,
				0);
		g_assert_nonnull(strstr(out, "Token saved in the Secret Service"));
		/* not in the file */
		g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
		g_clear_pointer(&out, g_free);
		g_clear_pointer(&err, g_free);

		g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "-v", "status"), ==, 0);
		g_assert_nonnull(strstr(err, "token: from the Secret Service"));
		g_assert_null(strstr(err, "keyring-secret-7"));
		g_clear_pointer(&out, g_free);
		g_clear_pointer(&err, g_free);
	}
	{
		/* CODECHAT_TOKEN still wins */
		const gchar *const extra[] = {bus_env, "CODECHAT_TOKEN=from-env", NULL};
		g_assert_cmpint(RUN(f, extra, NULL, &out, &err, "-v", "status"), ==, 0);
		g_assert_nonnull(strstr(err, "token: from CODECHAT_TOKEN"));
		g_clear_pointer(&out, g_free);
		g_clear_pointer(&err, g_free);
	}
	/* without the bus, the keyring's token is out of reach: none (GTestDBus
	 * set the bus address in this process's environment) */
	g_assert_cmpint(RUN(f, no_bus, NULL, &out, &err, "-v", "status"), ==, 0);
	g_assert_nonnull(strstr(err, "token: none"));

	g_subprocess_send_signal(keyring, SIGTERM);
	codechat_test_wait_exit(keyring, RUN_TIMEOUT_MS);
	g_clear_object(&connection);
	g_test_dbus_down(bus);
}

/* init -------------------------------------------------------------------- */

static void
test_init_flags(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *server = g_strdup_printf("--server=%s", f->daemon->uri);
	g_autofree gchar *keyfile = NULL;
	g_autofree gchar *value = NULL;
	g_autofree gchar *expected = NULL;
	g_autoptr(JsonNode) node = NULL;
	JsonObject *obj;

	/* stdin is not a terminal: flags only, no questions */
	g_assert_cmpint(RUN(f, NULL, "ignored\n", &out, &err, "init", server, "--nick", "hana"),
			==,
			0);
	expected = g_strdup_printf("  server-url  %s\n  nickname    hana\n", f->daemon->uri);
	g_assert_nonnull(strstr(out, expected));
	g_assert_nonnull(strstr(out, "No token"));
	g_assert_null(strstr(out, "?"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	value = config_get(f, "server-url");
	g_assert_cmpstr(value, ==, f->daemon->uri);
	g_clear_pointer(&value, g_free);
	value = config_get(f, "nickname");
	g_assert_cmpstr(value, ==, "hana");
	g_clear_pointer(&value, g_free);

	/* --init is the same, and --json says it for scripts */
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "--json", "--init", "--nick", "ivan"),
			==,
			0);
	node = json_from_string(out, NULL);
	g_assert_nonnull(node);
	obj = json_node_get_object(node);
	g_assert_cmpstr(json_object_get_string_member(obj, "server-url"), ==, f->daemon->uri);
	g_assert_cmpstr(json_object_get_string_member(obj, "nickname"), ==, "ivan");
	g_assert_cmpstr(json_object_get_string_member(obj, "token"), ==, "none");
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	/* nothing is saved when the server cannot be reached (2) ... */
	keyfile = keyfile_contents(f);
	g_assert_cmpint(
	    RUN(f, NULL, NULL, &out, &err, "init", "--server", "ws://127.0.0.1:1", "--nick", "joe"),
	    ==,
	    2);
	g_assert_nonnull(strstr(err, "nothing saved"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	/* ... nor for a nick the client knows is invalid (1) ... */
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "init", "--nick", "0joe"), ==, 1);
	g_assert_nonnull(strstr(err, "not a valid nick"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	/* ... nor for an invalid URL (1) */
	g_assert_cmpint(
	    RUN(f, NULL, NULL, &out, &err, "init", "--server", "ftp://x", "--nick", "joe"),
	    ==,
	    1);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	{
		g_autofree gchar *after = keyfile_contents(f);
		g_assert_cmpstr(keyfile, ==, after);
	}
	/* init takes no argument */
	g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, "init", "extra"), ==, 1);
}

/* the server refuses the nick: it is in use by a connected session (3) */
static void
test_init_refused(Fixture *f, gconstpointer data)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GSubprocess) watcher = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *server = g_strdup_printf("--server=%s", f->daemon->uri);
	g_autofree gchar *before = NULL;
	g_autofree gchar *after = NULL;
	g_auto(GStrv) env = env_with(f, NULL);
	gint status = 0;

	launcher = codechat_test_client_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
							 G_SUBPROCESS_FLAGS_STDERR_SILENCE,
						     (const gchar *const *)env);
	watcher = g_subprocess_launcher_spawn(launcher,
					      &error,
					      codechat_test_client_path(),
					      server,
					      "--nick",
					      "kim",
					      "watch",
					      NULL);
	g_assert_no_error(error);
	/* wait until the watcher holds the nick: it is a member of general */
	for (guint i = 0; i < WAIT_TIMEOUT_MS / POLL_INTERVAL_MS; i++) {
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		g_assert_cmpint(RUN(f, NULL, NULL, &out, &err, server, "--nick", "observer", "who"),
				==,
				0);
		if (g_regex_match_simple("^kim$", out, G_REGEX_MULTILINE, 0))
			break;
		g_assert_cmpuint(i + 1, <, WAIT_TIMEOUT_MS / POLL_INTERVAL_MS); /* never joined */
		codechat_test_sleep_ms(POLL_INTERVAL_MS);
	}
	before = keyfile_contents(f);
	{
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		status = RUN(f, NULL, NULL, &out, &err, "init", server, "--nick", "kim");
		g_assert_nonnull(strstr(err, "nothing saved"));
		g_assert_nonnull(strstr(err, "nick-taken"));
	}
	g_assert_cmpint(status, ==, 3);
	after = keyfile_contents(f);
	g_assert_cmpstr(before, ==, after);
	g_subprocess_send_signal(watcher, SIGTERM);
	codechat_test_wait_exit(watcher, RUN_TIMEOUT_MS);
}

/* interactive: a pseudo-terminal as a person's terminal */

typedef struct {
	GSubprocess *proc; /* (owned) */
	int master;
	GString *screen; /* everything the program wrote */
	gsize seen;	 /* what expect() already matched */
} Pty;

static void
pty_free(Pty *pty)
{
	/* the identifier is NULL once the process was waited for */
	if (pty->proc != NULL && g_subprocess_get_identifier(pty->proc) != NULL) {
		g_subprocess_force_exit(pty->proc);
		g_subprocess_wait(pty->proc, NULL, NULL);
	}
	g_clear_object(&pty->proc);
	if (pty->master >= 0)
		close(pty->master);
	g_string_free(pty->screen, TRUE);
	g_free(pty);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Pty, pty_free)

static Pty *
pty_spawn(const gchar *const *env, const gchar *const *args)
{
	Pty *pty = g_new0(Pty, 1);
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GError) error = NULL;
	struct winsize size = {.ws_row = 24, .ws_col = 100};
	int slave = -1;

	g_assert_cmpint(openpty(&pty->master, &slave, NULL, NULL, &size), ==, 0);
	g_assert_cmpint(fcntl(pty->master, F_SETFL, O_NONBLOCK), ==, 0);
	pty->screen = g_string_new(NULL);
	launcher = codechat_test_client_launcher_new(G_SUBPROCESS_FLAGS_NONE, env);
	g_subprocess_launcher_setenv(launcher, "TERM", "xterm", TRUE);
	g_subprocess_launcher_take_stdin_fd(launcher, slave);
	g_subprocess_launcher_take_stdout_fd(launcher, dup(slave));
	g_subprocess_launcher_take_stderr_fd(launcher, dup(slave));
	g_ptr_array_add(argv, (gpointer)codechat_test_client_path());
	for (guint i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)args[i]);
	g_ptr_array_add(argv, NULL);
	pty->proc =
	    g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	return pty;
}

static void
pty_read(Pty *pty)
{
	gchar buf[4096];
	ssize_t n;

	while ((n = read(pty->master, buf, sizeof(buf))) > 0)
		g_string_append_len(pty->screen, buf, n);
}

/* waits until the program wrote @needle (after what was matched before) */
static void
pty_expect(Pty *pty, const gchar *needle)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;
	const gchar *found;

	for (;;) {
		pty_read(pty);
		found = strstr(pty->screen->str + pty->seen, needle);
		if (found != NULL) {
			pty->seen = (gsize)(found - pty->screen->str) + strlen(needle);
			return;
		}
		if (g_get_monotonic_time() > deadline) {
			g_test_message("screen:\n%s", pty->screen->str);
			g_error("“%s” never appeared", needle);
		}
		codechat_test_sleep_ms(20);
	}
}

static void
pty_type(Pty *pty, const gchar *text)
{
	g_assert_cmpint(write(pty->master, text, strlen(text)), ==, (gssize)strlen(text));
}

static gint
pty_wait(Pty *pty)
{
	gint status = codechat_test_wait_exit(pty->proc, RUN_TIMEOUT_MS);

	pty_read(pty);
	return status;
}

static void
test_init_interactive(Fixture *f, gconstpointer data)
{
	g_auto(GStrv) env = env_with(f, NULL);
	g_autoptr(Pty) pty = NULL;
	g_autofree gchar *prompt = NULL;
	g_autofree gchar *value = NULL;
	g_autofree gchar *tokens = NULL;
	g_autofree gchar *path = tokens_path(f);
	g_autofree gchar *saved_token = NULL;

	pty = pty_spawn((const gchar *const *)env, (const gchar *const[]){"init", NULL});
	/* the current setting is the default */
	pty_expect(pty, "Server URL [ws://127.0.0.1:7373/v1/ws]: ");
	/* a bad answer is explained and asked again */
	pty_type(pty, "http://nope\r");
	pty_expect(pty, "is not a ws:// or wss:// URL");
	pty_expect(pty, "Server URL [");
	pty_type(pty, f->daemon->uri);
	pty_type(pty, "\r");
	pty_expect(pty, "Nick [");
	pty_type(pty, "9bad\r");
	pty_expect(pty, "not a valid nick");
	pty_expect(pty, "Nick [");
	pty_type(pty, "lena\r");
	pty_expect(pty, "Token (");
	pty_expect(pty, "): ");
	pty_type(pty, "hidden-token-42\r");
	pty_expect(pty, "Token saved in");
	g_assert_cmpint(pty_wait(pty), ==, 0);
	/* the token was not echoed */
	g_assert_null(strstr(pty->screen->str, "hidden-token-42"));

	value = config_get(f, "nickname");
	g_assert_cmpstr(value, ==, "lena");
	g_clear_pointer(&value, g_free);
	value = config_get(f, "server-url");
	g_assert_cmpstr(value, ==, f->daemon->uri);
	g_assert_true(g_file_get_contents(path, &tokens, NULL, NULL));
	saved_token = g_strdup_printf("lena=hidden-token-42\n");
	g_assert_nonnull(strstr(tokens, saved_token));
	g_clear_pointer(&pty, pty_free);

	/* again: Enter keeps what is set, an empty token keeps the saved one */
	pty = pty_spawn((const gchar *const *)env, (const gchar *const[]){"--init", NULL});
	prompt = g_strdup_printf("Server URL [%s]: ", f->daemon->uri);
	pty_expect(pty, prompt);
	pty_type(pty, "\r");
	pty_expect(pty, "Nick [lena]: ");
	pty_type(pty, "\r");
	pty_expect(pty, "): ");
	pty_type(pty, "\r");
	pty_expect(pty, "Token: the one kept in");
	g_assert_cmpint(pty_wait(pty), ==, 0);
	g_clear_pointer(&pty, pty_free);

	/* Ctrl-D at the token's question: nothing saved either */
	pty = pty_spawn(
	    (const gchar *const *)env,
	    (const gchar *const[]){"init", "--nick", "zed", "--server", f->daemon->uri, NULL});
	pty_expect(pty, "): ");
	pty_type(pty, "\004");
	pty_expect(pty, "nothing saved");
	g_assert_cmpint(pty_wait(pty), ==, 1);
	g_clear_pointer(&pty, pty_free);
	value = config_get(f, "nickname");
	g_assert_cmpstr(value, ==, "lena");
	g_clear_pointer(&value, g_free);

	/* killed at the token's question: the terminal echoes again */
	pty = pty_spawn(
	    (const gchar *const *)env,
	    (const gchar *const[]){"init", "--nick", "zed", "--server", f->daemon->uri, NULL});
	pty_expect(pty, "): ");
	{
		struct termios now;
		g_assert_cmpint(tcgetattr(pty->master, &now), ==, 0);
		g_assert_false(now.c_lflag & ECHO);
		g_subprocess_send_signal(pty->proc, SIGINT);
		g_subprocess_wait(pty->proc, NULL, NULL);
		g_assert_true(g_subprocess_get_if_signaled(pty->proc));
		g_assert_cmpint(g_subprocess_get_term_sig(pty->proc), ==, SIGINT);
		g_assert_cmpint(tcgetattr(pty->master, &now), ==, 0);
		g_assert_true(now.c_lflag & ECHO);
	}
	g_clear_pointer(&pty, pty_free);

	/* Ctrl-D at a question: nothing saved, a usage error */
	pty = pty_spawn((const gchar *const *)env,
			(const gchar *const[]){"init", "--nick", "mo", NULL});
	pty_expect(pty, "Server URL [");
	pty_type(pty, "\004");
	pty_expect(pty, "nothing saved");
	g_assert_cmpint(pty_wait(pty), ==, 1);
	value = config_get(f, "nickname");
	g_assert_cmpstr(value, ==, "lena");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

#define ADD(name, func, daemon)                                                                    \
	g_test_add("/codechat/settings/" name,                                                     \
		   Fixture,                                                                        \
		   GINT_TO_POINTER(daemon),                                                        \
		   fixture_setup,                                                                  \
		   func,                                                                           \
		   fixture_teardown)
	ADD("config/list", test_config_list, FALSE);
	ADD("config/set-get-reset", test_config_set_get_reset, FALSE);
	ADD("config/invalid", test_config_invalid, FALSE);
	ADD("config/memory-backend", test_config_memory_backend, FALSE);
	ADD("config/dconf-unreachable", test_config_dconf_unreachable, FALSE);
	ADD("no-schema", test_no_schema, TRUE);
	ADD("precedence/resolved", test_precedence, FALSE);
	ADD("precedence/effects", test_precedence_effects, TRUE);
	ADD("token/sources", test_token_sources, TRUE);
	ADD("token/keyring", test_token_keyring, TRUE);
	ADD("init/flags", test_init_flags, TRUE);
	ADD("init/refused", test_init_refused, TRUE);
	ADD("init/interactive", test_init_interactive, TRUE);
#undef ADD

	return g_test_run();
}
