/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"

/*
 * SIGHUP reloads codechatd's config file (DESIGN.md): a real daemon with
 * a --config file of the test's, its stderr read by the test so that what
 * it logs can be waited for and checked.
 */

#define T CODECHAT_TEST_TIMEOUT_MS

typedef struct {
	GSubprocess *proc;   /* (owned) */
	gchar *dir;	     /* (owned) data dir, XDG_CONFIG_HOME and the config file's */
	gchar *config;	     /* (owned) the --config file */
	gchar *uri;	     /* (owned) ws://127.0.0.1:PORT/v1/ws */
	GString *log;	     /* (owned) the daemon's stderr so far */
	GCancellable *stop;  /* (owned) ends the reading of stderr */
	gboolean log_closed; /* stderr reached its end */
	gsize mark;	     /* where in @log the lines of the last signal begin */
	GPtrArray *clients;  /* (owned) (element-type CodechatTestWs) */
} Fixture;

static void
die_with_parent(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void
write_config(Fixture *fx, const gchar *contents)
{
	g_autoptr(GError) error = NULL;

	g_file_set_contents(fx->config, contents, -1, &error);
	g_assert_no_error(error);
}

static void
stderr_read_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	Fixture *fx = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) bytes =
	    g_input_stream_read_bytes_finish(G_INPUT_STREAM(source), result, &error);

	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return;
	if (bytes == NULL || g_bytes_get_size(bytes) == 0) {
		fx->log_closed = TRUE;
		return;
	}
	/* into the test log as well, for whoever reads a failure */
	fwrite(g_bytes_get_data(bytes, NULL), 1, g_bytes_get_size(bytes), stderr);
	g_string_append_len(fx->log, g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
	g_input_stream_read_bytes_async(G_INPUT_STREAM(source),
					4096,
					G_PRIORITY_DEFAULT,
					fx->stop,
					stderr_read_cb,
					fx);
}

/* codechatd --config FILE with @config_text in FILE, on 127.0.0.1:0
 * unless @config_text says another listen address, and @extra_args */
static void
fixture_start(Fixture *fx, const gchar *config_text, const gchar *const *extra_args)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GDataInputStream) out = NULL;
	g_autofree gchar *line = NULL;
	g_auto(GStrv) wrapper = NULL;
	g_auto(GStrv) env = g_get_environ();
	const gchar *wrapper_line = g_getenv("CODECHAT_TEST_DAEMON_WRAPPER");
	const gchar *p;

	fx->dir = g_dir_make_tmp("codechat-test-XXXXXX", &error);
	g_assert_no_error(error);
	fx->config = g_build_filename(fx->dir, "codechatd.conf", NULL);
	fx->log = g_string_new(NULL);
	fx->stop = g_cancellable_new();
	fx->clients = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_ws_free);
	write_config(fx, config_text);

	if (wrapper_line != NULL && wrapper_line[0] != '\0') {
		g_shell_parse_argv(wrapper_line, NULL, &wrapper, &error);
		g_assert_no_error(error);
		for (guint i = 0; wrapper[i] != NULL; i++)
			g_ptr_array_add(argv, wrapper[i]);
	}
	g_ptr_array_add(argv, (gpointer)codechat_test_daemon_path());
	g_ptr_array_add(argv, (gpointer) "--config");
	g_ptr_array_add(argv, fx->config);
	g_ptr_array_add(argv, (gpointer) "--data-dir");
	g_ptr_array_add(argv, fx->dir);
	/* a free port, unless the file says where */
	if (strstr(config_text, "listen=") == NULL) {
		g_ptr_array_add(argv, (gpointer) "--listen");
		g_ptr_array_add(argv, (gpointer) "127.0.0.1:0");
	}
	for (guint i = 0; extra_args != NULL && extra_args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)extra_args[i]);
	g_ptr_array_add(argv, NULL);

	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE |
					     G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
	/* no config or CODECHATD_* variable of the machine's may leak in */
	for (guint i = 0; env[i] != NULL; i++) {
		if (g_str_has_prefix(env[i], "CODECHATD_")) {
			g_autofree gchar *name = g_strndup(env[i], strcspn(env[i], "="));
			g_subprocess_launcher_unsetenv(launcher, name);
		}
	}
	g_subprocess_launcher_setenv(launcher, "XDG_CONFIG_HOME", fx->dir, TRUE);
	/* the text format whatever the test's stderr is */
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_LOG_FORMAT");
	if (g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS") != NULL)
		g_subprocess_launcher_setenv(launcher,
					     "ASAN_OPTIONS",
					     g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS"),
					     TRUE);
	fx->proc =
	    g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	g_input_stream_read_bytes_async(g_subprocess_get_stderr_pipe(fx->proc),
					4096,
					G_PRIORITY_DEFAULT,
					fx->stop,
					stderr_read_cb,
					fx);

	out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(fx->proc));
	line = g_data_input_stream_read_line_utf8(out, NULL, NULL, &error);
	g_assert_no_error(error);
	g_assert_nonnull(line);
	p = strstr(line, "ws://");
	g_assert_nonnull(p);
	fx->uri = g_strdup(p);
}

static void
fixture_teardown(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	/* clients first: the daemon closes every session before it exits */
	g_clear_pointer(&fx->clients, g_ptr_array_unref);
	if (fx->proc != NULL) {
		g_subprocess_send_signal(fx->proc, SIGTERM);
		g_subprocess_wait(fx->proc, NULL, &error);
		g_assert_no_error(error);
		/* a clean shutdown, and under valgrind no leak or bad access */
		g_assert_true(g_subprocess_get_if_exited(fx->proc));
		g_assert_cmpint(g_subprocess_get_exit_status(fx->proc), ==, 0);
	}
	g_cancellable_cancel(fx->stop);
	/* the cancelled read reports before anything it points to is gone */
	while (g_main_context_iteration(NULL, FALSE))
		;
	g_clear_object(&fx->proc);
	g_clear_object(&fx->stop);
	if (fx->dir != NULL)
		codechat_test_rm_rf(fx->dir);
	g_free(fx->dir);
	g_free(fx->config);
	g_free(fx->uri);
	if (fx->log != NULL)
		g_string_free(fx->log, TRUE);
}

/* what the daemon logged since the last fx_hup() contains @needle, once
 * it has: waits up to @timeout_ms */
static gboolean
fx_wait_log(Fixture *fx, const gchar *needle, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	while (strstr(fx->log->str + fx->mark, needle) == NULL) {
		if (fx->log_closed || g_get_monotonic_time() > deadline)
			return FALSE;
		g_main_context_iteration(NULL, FALSE);
		g_usleep(1000);
	}
	return TRUE;
}

/* SIGHUP, and the daemon's answer to it: "reloaded" or "not reloading" */
static void
fx_hup(Fixture *fx)
{
	fx->mark = fx->log->len;
	g_subprocess_send_signal(fx->proc, SIGHUP);
	/* under valgrind everything is slower */
	g_assert_true(fx_wait_log(fx, "reload", 10 * T));
}

static CodechatTestWs *
fx_client(Fixture *fx, const gchar *nick, JsonObject **welcome)
{
	CodechatTestWs *ws = codechat_test_ws_new_client(fx->uri, nick, welcome);

	g_ptr_array_add(fx->clients, ws);
	return ws;
}

/* the rate limit a new session is told in its welcome */
static gint64
fx_welcome_limit(Fixture *fx, const gchar *nick, const gchar *member)
{
	g_autoptr(JsonObject) welcome = NULL;
	JsonObject *limits;

	fx_client(fx, nick, &welcome);
	limits = json_object_get_object_member(welcome, "limits");
	g_assert_nonnull(limits);
	return codechat_test_json_int(limits, member);
}

static guint
handshake_status(Fixture *fx, const gchar *origin)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(CodechatTestWs) ws = NULL;
	guint status = 0;

	ws = codechat_test_ws_try_connect(fx->uri, origin, NULL, &status, &error);
	if (ws != NULL)
		return SOUP_STATUS_SWITCHING_PROTOCOLS;
	return status;
}

static void
test_unchanged(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice;

	fixture_start(fx, "[daemon]\nrate-limit=20\n", NULL);
	alice = fx_client(fx, "alice", NULL);
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "nothing changed", T));
	/* the session of before is still served, and new ones are */
	codechat_test_ws_send_ping(alice, "after-hup");
	codechat_test_ws_expect_pong(alice);
	g_assert_cmpint(fx_welcome_limit(fx, "bob", "rate"), ==, 20);
	/* and again: a second SIGHUP is no different */
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "nothing changed", T));
	codechat_test_ws_send_ping(alice, "after-second-hup");
	codechat_test_ws_expect_pong(alice);
}

static void
test_rate_limit(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice;

	fixture_start(fx, "[daemon]\nrate-limit=20\nrate-burst=50\n", NULL);
	alice = fx_client(fx, "alice", NULL);
	g_assert_cmpint(fx_welcome_limit(fx, "bob", "rate"), ==, 20);
	write_config(fx, "[daemon]\nrate-limit=5\nrate-burst=7\n");
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "rate-limit 20 → 5", T));
	g_assert_true(fx_wait_log(fx, "rate-burst 50 → 7", T));
	g_assert_cmpint(fx_welcome_limit(fx, "carol", "rate"), ==, 5);
	g_assert_cmpint(fx_welcome_limit(fx, "dave", "burst"), ==, 7);
	/* nobody was dropped */
	codechat_test_ws_send_ping(alice, "still-here");
	codechat_test_ws_expect_pong(alice);
}

static void
test_allow_origin(Fixture *fx, gconstpointer user_data)
{
	fixture_start(fx, "[daemon]\n", NULL);
	g_assert_cmpuint(handshake_status(fx, "http://example.test"), ==, SOUP_STATUS_FORBIDDEN);
	write_config(fx, "[daemon]\nallow-origin=http://example.test\n");
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "allow-origin (none) → http://example.test", T));
	g_assert_cmpuint(handshake_status(fx, "http://example.test"),
			 ==,
			 SOUP_STATUS_SWITCHING_PROTOCOLS);
	g_assert_cmpuint(handshake_status(fx, "http://evil.test"), ==, SOUP_STATUS_FORBIDDEN);
	/* and taken back */
	write_config(fx, "[daemon]\n");
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "reloaded", T));
	g_assert_cmpuint(handshake_status(fx, "http://example.test"), ==, SOUP_STATUS_FORBIDDEN);
}

static void
test_max_connections(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(CodechatTestWs) third = NULL;
	g_autoptr(JsonObject) error = NULL;

	fixture_start(fx, "[daemon]\nmax-connections=10\n", NULL);
	fx_client(fx, "alice", NULL);
	fx_client(fx, "bob", NULL);
	write_config(fx, "[daemon]\nmax-connections=2\n");
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "max-connections 10 → 2", T));
	/* the two open ones stay; a third is refused with 1013 */
	third = codechat_test_ws_connect_simple(fx->uri);
	error = codechat_test_ws_expect_error(third, "overloaded", NULL);
	g_assert_cmpint(codechat_test_ws_wait_close(third, T), ==, 1013);
	for (guint i = 0; i < fx->clients->len; i++) {
		CodechatTestWs *ws = g_ptr_array_index(fx->clients, i);
		codechat_test_ws_send_ping(ws, "open");
		codechat_test_ws_expect_pong(ws);
	}
}

/* the timers: a shorter hello timeout and keepalive apply to what comes
 * after the reload, while the sessions of before are left alone */
static void
test_timers(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(CodechatTestWs) early = NULL;
	g_autoptr(CodechatTestWs) late = NULL;
	CodechatTestWs *alice;
	gint64 start;

	fixture_start(fx, "[daemon]\nhello-timeout=30\nkeepalive=30\n", NULL);
	alice = fx_client(fx, "alice", NULL);
	/* connected before, without a hello: it has the 30 seconds of then */
	early = codechat_test_ws_connect_simple(fx->uri);
	write_config(fx,
		     "[daemon]\nhello-timeout=1\nkeepalive=1\nnotify=mentions\nnick=bot\n"
		     "handshake-timeout=5\nmax-handshakes=100\nmax-outbound-bytes=65536\n"
		     "max-connections-per-address=50\n");
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "hello-timeout 30 → 1", T));
	g_assert_true(fx_wait_log(fx, "keepalive 30 → 1", T));
	g_assert_true(fx_wait_log(fx, "notify off → mentions", T));
	g_assert_true(fx_wait_log(fx, "nick (none) → bot", T));
	g_assert_true(fx_wait_log(fx, "handshake-timeout 10 → 5", T));
	g_assert_true(fx_wait_log(fx, "max-handshakes 1024 → 100", T));
	g_assert_true(fx_wait_log(fx, "max-outbound-bytes 1048576 → 65536", T));
	g_assert_true(fx_wait_log(fx, "max-connections-per-address 0 → 50", T));

	/* connected after, without a hello: closed after a second, although
	 * an earlier session waits longer in the same queue */
	start = g_get_monotonic_time();
	late = codechat_test_ws_connect_simple(fx->uri);
	g_assert_cmpint(codechat_test_ws_wait_close(late, 10 * T),
			==,
			SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION);
	g_assert_cmpint(g_get_monotonic_time() - start, <, 10 * G_USEC_PER_SEC);
	/* pinged every second now: alice answers them and is not dropped,
	 * not even for the time she was idle under the old interval */
	{
		gboolean never = FALSE;
		codechat_test_pump_flag(&never, 2500);
	}
	g_assert_true(codechat_test_ws_is_open(alice));
	codechat_test_ws_send_ping(alice, "kept");
	codechat_test_ws_expect_pong(alice);
	g_assert_true(codechat_test_ws_is_open(early));
}

static void
test_broken(Fixture *fx, gconstpointer user_data)
{
	const gchar *broken[] = {
	    /* not a key file */
	    "[daemon\nrate-limit=5\n",
	    /* not a number */
	    "[daemon]\nrate-limit=5\nrate-burst=banana\n",
	    /* out of range, after a good value that must not be applied alone */
	    "[daemon]\nrate-limit=5\nallow-origin=http://example.test\nrate-burst=0\n",
	    /* not a choice */
	    "[daemon]\nrate-limit=5\nnotify=sometimes\n",
	};

	fixture_start(fx, "[daemon]\nrate-limit=20\n", NULL);
	fx_client(fx, "alice", NULL);
	for (gsize i = 0; i < G_N_ELEMENTS(broken); i++) {
		g_autofree gchar *nick = g_strdup_printf("user%" G_GSIZE_FORMAT, i);

		write_config(fx, broken[i]);
		fx_hup(fx);
		g_assert_true(fx_wait_log(fx, "warning", T));
		g_assert_true(fx_wait_log(fx, "not reloading the config", T));
		g_assert_null(strstr(fx->log->str + fx->mark, "reloaded"));
		/* nothing of it applies */
		g_assert_cmpint(fx_welcome_limit(fx, nick, "rate"), ==, 20);
		g_assert_cmpuint(handshake_status(fx, "http://example.test"),
				 ==,
				 SOUP_STATUS_FORBIDDEN);
	}
	/* the reason is given */
	g_assert_nonnull(strstr(fx->log->str, "key rate-burst"));
	g_assert_nonnull(strstr(fx->log->str, "--rate-burst must be at least 1"));
	g_assert_nonnull(strstr(fx->log->str, "sometimes"));
	/* a file that is gone is no different */
	g_unlink(fx->config);
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "not reloading the config", T));
	g_assert_cmpint(fx_welcome_limit(fx, "zoe", "rate"), ==, 20);
	/* and once it is good again, it applies */
	write_config(fx, "[daemon]\nrate-limit=5\n");
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "rate-limit 20 → 5", T));
}

static void
test_flag_wins(Fixture *fx, gconstpointer user_data)
{
	const gchar *args[] = {"--rate-limit", "7", NULL};

	fixture_start(fx, "[daemon]\nrate-limit=20\nrate-burst=50\n", args);
	g_assert_cmpint(fx_welcome_limit(fx, "alice", "rate"), ==, 7);
	write_config(fx, "[daemon]\nrate-limit=3\nrate-burst=9\n");
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "rate-burst 50 → 9", T));
	g_assert_null(strstr(fx->log->str + fx->mark, "rate-limit"));
	g_assert_cmpint(fx_welcome_limit(fx, "bob", "rate"), ==, 7);
	g_assert_cmpint(fx_welcome_limit(fx, "carol", "burst"), ==, 9);
}

static void
test_needs_restart(Fixture *fx, gconstpointer user_data)
{
	fixture_start(fx, "[daemon]\nlisten=127.0.0.1:0\nrate-limit=20\n", NULL);
	fx_client(fx, "alice", NULL);
	write_config(fx,
		     "[daemon]\nlisten=0.0.0.0:1\nsync=normal\npermessage-deflate=true\n"
		     "rate-limit=5\n");
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "rate-limit 20 → 5", T));
	g_assert_nonnull(strstr(fx->log->str + fx->mark, "listen changed: restart codechatd"));
	g_assert_nonnull(strstr(fx->log->str + fx->mark, "sync changed: restart codechatd"));
	g_assert_nonnull(
	    strstr(fx->log->str + fx->mark, "permessage-deflate changed: restart codechatd"));
	/* what depends on the address follows the one listened on: loopback,
	 * where there is no limit per address by default */
	g_assert_null(strstr(fx->log->str + fx->mark, "max-connections-per-address"));
	/* still where it was, with the live setting applied */
	g_assert_cmpint(fx_welcome_limit(fx, "bob", "rate"), ==, 5);
	/* said again at the next reload: it still is not applied */
	fx_hup(fx);
	g_assert_true(fx_wait_log(fx, "nothing changed", T));
	g_assert_nonnull(strstr(fx->log->str + fx->mark, "listen changed: restart codechatd"));
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

#define ADD(path, func)                                                                            \
	g_test_add("/codechat/reload/" path, Fixture, NULL, NULL, func, fixture_teardown)
	ADD("unchanged", test_unchanged);
	ADD("rate-limit", test_rate_limit);
	ADD("allow-origin", test_allow_origin);
	ADD("max-connections", test_max_connections);
	ADD("timers", test_timers);
	ADD("broken", test_broken);
	ADD("flag-wins", test_flag_wins);
	ADD("needs-restart", test_needs_restart);
#undef ADD
	return g_test_run();
}
