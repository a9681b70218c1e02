/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "codechat-test-client.h"
#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"

/*
 * Accounts, end to end: `codechatd user` on a data dir, real daemons that
 * use it, real WebSocket clients, and the real `codechat` client.
 */

#define T CODECHAT_TEST_TIMEOUT_MS

#define CLOSE_POLICY 1008

static void
child_setup(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* a launcher for codechatd, with no CODECHATD_* of the machine's */
static GSubprocessLauncher *
daemon_launcher_new(GSubprocessFlags flags, const gchar *config_home)
{
	GSubprocessLauncher *launcher = g_subprocess_launcher_new(flags);
	g_auto(GStrv) env = g_get_environ();

	g_subprocess_launcher_set_child_setup(launcher, child_setup, NULL, NULL);
	for (guint i = 0; env[i] != NULL; i++) {
		if (g_str_has_prefix(env[i], "CODECHATD_")) {
			g_autofree gchar *name = g_strndup(env[i], strcspn(env[i], "="));
			g_subprocess_launcher_unsetenv(launcher, name);
		}
	}
	g_subprocess_launcher_setenv(launcher, "XDG_CONFIG_HOME", config_home, TRUE);
	if (g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS") != NULL)
		g_subprocess_launcher_setenv(launcher,
					     "ASAN_OPTIONS",
					     g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS"),
					     TRUE);
	return launcher;
}

typedef struct {
	gboolean done;
	gchar *out;
	gchar *err;
	GError *error;
} Communicate;

static void
communicate_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	Communicate *c = user_data;
	g_subprocess_communicate_utf8_finish(G_SUBPROCESS(source),
					     result,
					     &c->out,
					     &c->err,
					     &c->error);
	c->done = TRUE;
}

/* runs codechatd with @argv (NULL-terminated, after the program) and
 * @env (KEY=VALUE pairs) to its end, at most 20 s; returns its status */
static gint
run_daemon_argv(const gchar *config_home,
		const gchar *const *env,
		const gchar *const *args,
		gchar **out,
		gchar **err)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    daemon_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
				config_home);
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	Communicate c = {0};
	gint status;

	for (guint i = 0; env != NULL && env[i] != NULL; i++) {
		g_auto(GStrv) pair = g_strsplit(env[i], "=", 2);
		g_subprocess_launcher_setenv(launcher, pair[0], pair[1], TRUE);
	}
	g_ptr_array_add(argv, (gpointer)codechat_test_daemon_path());
	for (guint i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)args[i]);
	g_ptr_array_add(argv, NULL);
	proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	g_subprocess_communicate_utf8_async(proc, NULL, NULL, communicate_cb, &c);
	if (!codechat_test_wait_until(&c.done, RUN_TIMEOUT_MS)) {
		g_subprocess_force_exit(proc);
		codechat_test_wait_until(&c.done, RUN_TIMEOUT_MS);
		g_assert_not_reached(); /* codechatd hung */
	}
	g_assert_no_error(c.error);
	status = codechat_test_wait_exit(proc, RUN_TIMEOUT_MS);
	if (c.err != NULL && c.err[0] != '\0')
		codechat_test_note("codechatd said: %s", c.err);
	if (out != NULL)
		*out = g_steal_pointer(&c.out);
	if (err != NULL)
		*err = g_steal_pointer(&c.err);
	g_free(c.out);
	g_free(c.err);
	return status;
}

/* codechatd --data-dir DIR user ARGS... */
static gint
run_user(const gchar *data_dir, gchar **out, gchar **err, const gchar *first, ...)
{
	g_autoptr(GPtrArray) args = g_ptr_array_new();
	va_list ap;

	g_ptr_array_add(args, (gpointer) "--data-dir");
	g_ptr_array_add(args, (gpointer)data_dir);
	g_ptr_array_add(args, (gpointer) "user");
	va_start(ap, first);
	for (const gchar *arg = first; arg != NULL; arg = va_arg(ap, const gchar *))
		g_ptr_array_add(args, (gpointer)arg);
	va_end(ap);
	g_ptr_array_add(args, NULL);
	return run_daemon_argv(data_dir, NULL, (const gchar *const *)args->pdata, out, err);
}

/* `user add NICK` must succeed: returns the token it printed */
static gchar *
add_user(const gchar *data_dir, const gchar *nick)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run_user(data_dir, &out, &err, "add", nick, NULL), ==, 0);
	g_assert_nonnull(out);
	g_assert_true(g_str_has_suffix(out, "\n"));
	out[strlen(out) - 1] = '\0';
	g_assert_null(strchr(out, '\n'));
	return g_steal_pointer(&out);
}

static gchar *
make_data_dir(void)
{
	g_autoptr(GError) error = NULL;
	gchar *dir = g_dir_make_tmp("codechat-accounts-XXXXXX", &error);
	g_assert_no_error(error);
	return dir;
}

static CodechatTestWs *
hello_with_token(const gchar *uri, const gchar *nick, const gchar *token)
{
	CodechatTestWs *ws = codechat_test_ws_connect_simple(uri);

	if (token != NULL)
		codechat_test_ws_sendf(ws,
				       "{\"type\":\"hello\",\"nick\":\"%s\",\"token\":\"%s\","
				       "\"ref\":\"h\"}",
				       nick,
				       token);
	else
		codechat_test_ws_sendf(ws,
				       "{\"type\":\"hello\",\"nick\":\"%s\",\"ref\":\"h\"}",
				       nick);
	return ws;
}

static void
assert_welcome(const gchar *uri, const gchar *nick, const gchar *token, CodechatTestWs **out)
{
	g_autoptr(CodechatTestWs) ws = hello_with_token(uri, nick, token);
	g_autoptr(JsonObject) welcome = codechat_test_ws_expect(ws, "welcome");

	g_assert_cmpstr(codechat_test_json_string(welcome, "nick"), ==, nick);
	if (out != NULL)
		*out = g_steal_pointer(&ws);
}

/* auth-failed, then close 1008 */
static void
assert_refused(const gchar *uri, const gchar *nick, const gchar *token)
{
	g_autoptr(CodechatTestWs) ws = hello_with_token(uri, nick, token);
	g_autoptr(JsonObject) error = codechat_test_ws_expect_error(ws, "auth-failed", "h");

	g_assert_nonnull(error);
	g_assert_cmpint(codechat_test_ws_wait_close(ws, T), ==, CLOSE_POLICY);
}

static void
assert_alive(CodechatTestWs *ws)
{
	g_assert_true(codechat_test_ws_is_open(ws));
	codechat_test_ws_send_ping(ws, NULL);
	codechat_test_ws_expect_pong(ws);
}

static gsize
count_lines(const gchar *text)
{
	gsize n = 0;
	for (const gchar *p = text; *p != '\0'; p++)
		n += *p == '\n';
	return n;
}

/* user add prints one token line; only a hash is kept, mode 0600 */
static void
test_user_commands(void)
{
	g_autofree gchar *base = make_data_dir();
	/* a data dir that does not exist yet: user add makes it, 0700 */
	g_autofree gchar *dir = g_build_filename(base, "data", NULL);
	g_autofree gchar *path = g_build_filename(dir, "accounts", NULL);
	g_autofree gchar *token = NULL;
	g_autofree gchar *token2 = NULL;
	g_autofree gchar *contents = NULL;
	g_autofree gchar *hex = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	GStatBuf st;

	token = add_user(dir, "alice");
	/* 32 bytes as URL-safe base64 without padding: 43 characters */
	g_assert_cmpuint(strlen(token), ==, 43);
	for (const gchar *p = token; *p != '\0'; p++)
		g_assert_true(g_ascii_isalnum(*p) || *p == '-' || *p == '_');

	g_assert_cmpint(g_stat(path, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 0777, ==, 0600);
	g_assert_cmpint(g_stat(dir, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 0777, ==, 0700);
	g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
	g_assert_null(strstr(contents, token));
	hex = g_compute_checksum_for_string(G_CHECKSUM_SHA256, token, -1);
	g_assert_nonnull(strstr(contents, hex));

	/* another account gets another token */
	token2 = add_user(dir, "bob");
	g_assert_cmpstr(token2, !=, token);

	/* the nick is taken in any case; a bad nick is refused */
	g_assert_cmpint(run_user(dir, &out, &err, "add", "ALICE", NULL), ==, 1);
	g_assert_cmpstr(out, ==, "");
	g_assert_nonnull(strstr(err, "ALICE"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(run_user(dir, &out, &err, "add", "9lives", NULL), ==, 1);
	g_assert_cmpstr(out, ==, "");
	g_assert_nonnull(strstr(err, "letter"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	g_assert_cmpint(run_user(dir, &out, NULL, "list", NULL), ==, 0);
	g_assert_cmpstr(out, ==, "alice\nbob\n");
	g_clear_pointer(&out, g_free);

	/* nicks differing only in case are the same */
	g_assert_cmpint(run_user(dir, NULL, NULL, "remove", "Bob", NULL), ==, 0);
	g_assert_cmpint(run_user(dir, &out, NULL, "list", NULL), ==, 0);
	g_assert_cmpstr(out, ==, "alice\n");
	g_clear_pointer(&out, g_free);
	g_assert_cmpint(run_user(dir, NULL, &err, "remove", "bob", NULL), ==, 1);
	g_assert_nonnull(strstr(err, "bob"));
	g_clear_pointer(&err, g_free);

	/* the file is still 0600 after a rewrite; usage errors exit 1 */
	g_assert_cmpint(g_stat(path, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 0777, ==, 0600);
	g_assert_cmpint(run_user(dir, NULL, NULL, "frob", NULL), ==, 1);
	g_assert_cmpint(run_user(dir, NULL, NULL, "add", NULL), ==, 1);

	/* list on a data dir without accounts: nothing, and no error */
	g_assert_cmpint(run_user(base, &out, NULL, "list", NULL), ==, 0);
	g_assert_cmpstr(out, ==, "");
	g_assert_cmpuint(count_lines(out), ==, 0);

	codechat_test_rm_rf(base);
}

/* with accounts, hello needs the token of its nick */
static void
test_hello(void)
{
	g_autofree gchar *dir = make_data_dir();
	g_autofree gchar *alice = add_user(dir, "alice");
	g_autofree gchar *bob = add_user(dir, "bob");
	g_autoptr(CodechatTestDaemon) daemon = codechat_test_daemon_start_in(dir, NULL, NULL);
	g_autoptr(CodechatTestWs) ws_alice = NULL;
	g_autoptr(CodechatTestWs) ws_bob = NULL;
	g_autofree gchar *wrong = g_strdup(alice);

	assert_welcome(daemon->uri, "alice", alice, &ws_alice);

	/* a wrong token: the right one with its last character changed */
	wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == 'A' ? 'B' : 'A';
	assert_refused(daemon->uri, "bob", wrong);
	/* no token at all, and an empty one */
	assert_refused(daemon->uri, "bob", NULL);
	assert_refused(daemon->uri, "bob", "");
	/* someone else's token */
	assert_refused(daemon->uri, "bob", alice);
	/* a nick without an account, even with a valid token */
	assert_refused(daemon->uri, "carol", alice);
	assert_refused(daemon->uri, "carol", NULL);

	/* the daemon still serves the others */
	assert_alive(ws_alice);
	assert_welcome(daemon->uri, "bob", bob, &ws_bob);
	assert_alive(ws_bob);

	/* the nick's case does not matter for its account */
	g_clear_pointer(&ws_bob, codechat_test_ws_free);
	assert_welcome(daemon->uri, "BOB", bob, NULL);

	/* closed while the test still pumps the main context */
	g_clear_pointer(&ws_alice, codechat_test_ws_free);
	g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
}

/* user remove while connected ends that nick's sessions only */
static void
test_remove_while_connected(void)
{
	g_autofree gchar *dir = make_data_dir();
	g_autofree gchar *alice = add_user(dir, "alice");
	g_autofree gchar *bob = add_user(dir, "bob");
	g_autoptr(CodechatTestDaemon) daemon = codechat_test_daemon_start_in(dir, NULL, NULL);
	g_autoptr(CodechatTestWs) ws_alice = NULL;
	g_autoptr(CodechatTestWs) ws_bob = NULL;
	g_autoptr(JsonObject) error = NULL;

	assert_welcome(daemon->uri, "alice", alice, &ws_alice);
	assert_welcome(daemon->uri, "bob", bob, &ws_bob);
	codechat_test_ws_sendf(ws_alice, "{\"type\":\"join\",\"room\":\"general\"}");
	g_clear_pointer(&error, json_object_unref);
	error = codechat_test_ws_expect(ws_alice, "joined");

	g_assert_cmpint(run_user(dir, NULL, NULL, "remove", "alice", NULL), ==, 0);
	g_assert_cmpint(codechat_test_ws_wait_close(ws_alice, T), ==, CLOSE_POLICY);
	g_clear_pointer(&error, json_object_unref);
	error = codechat_test_ws_expect_error(ws_alice, "auth-failed", NULL);

	assert_alive(ws_bob);
	/* and alice's token opens nothing any more */
	assert_refused(daemon->uri, "alice", alice);
	assert_alive(ws_bob);

	g_clear_pointer(&ws_alice, codechat_test_ws_free);
	g_clear_pointer(&ws_bob, codechat_test_ws_free);
	g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
}

/* an account added while the daemon runs applies without a restart */
static void
test_add_while_running(void)
{
	g_autoptr(CodechatTestDaemon) daemon = codechat_test_daemon_start(NULL);
	g_autoptr(CodechatTestWs) ws_dave = NULL;
	g_autoptr(CodechatTestWs) ws_alice = NULL;
	g_autofree gchar *alice = NULL;

	/* no accounts on loopback: anyone may chat */
	assert_welcome(daemon->uri, "dave", NULL, &ws_dave);

	alice = add_user(daemon->data_dir, "alice");
	/* the first account makes tokens necessary: the anonymous session
	 * would no longer be let in, so it is closed */
	g_assert_cmpint(codechat_test_ws_wait_close(ws_dave, T), ==, CLOSE_POLICY);
	assert_welcome(daemon->uri, "alice", alice, &ws_alice);
	assert_refused(daemon->uri, "dave", NULL);

	/* a second account too, while the first is connected */
	{
		g_autofree gchar *bob = add_user(daemon->data_dir, "bob");
		assert_welcome(daemon->uri, "bob", bob, NULL);
	}
	assert_alive(ws_alice);

	g_clear_pointer(&ws_dave, codechat_test_ws_free);
	g_clear_pointer(&ws_alice, codechat_test_ws_free);
	g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
}

/* codechatd --listen ADDR that is not loopback, with ARGS and ENV:
 * returns the exit status (after 20 s at most) */
static gint
run_refused(const gchar *dir, const gchar *const *env, const gchar *extra, gchar **err)
{
	const gchar *args[] =
	    {"--listen", "0.0.0.0:0", "--data-dir", dir, "--bus", "none", extra, NULL};
	return run_daemon_argv(dir, env, args, NULL, err);
}

/* protected mode: beyond loopback only with accounts or --allow-anonymous */
static void
test_protected_mode(void)
{
	g_autofree gchar *dir = make_data_dir();
	g_autofree gchar *err = NULL;
	g_autofree gchar *config = g_build_filename(dir, "codechatd.conf", NULL);

	g_assert_cmpint(run_refused(dir, NULL, NULL, &err), ==, 1);
	g_assert_nonnull(strstr(err, "without accounts"));
	g_assert_nonnull(strstr(err, "--allow-anonymous"));
	g_clear_pointer(&err, g_free);
	/* [::] is not loopback either */
	{
		const gchar *args[] = {"--listen", "[::]:0", "--data-dir", dir, NULL};
		g_assert_cmpint(run_daemon_argv(dir, NULL, args, NULL, &err), ==, 1);
		g_assert_nonnull(strstr(err, "--allow-anonymous"));
		g_clear_pointer(&err, g_free);
	}

	/* --allow-anonymous: starts, and takes hellos without tokens */
	{
		const gchar *args[] = {"--allow-anonymous", NULL};
		g_autofree gchar *copy = make_data_dir();
		g_autoptr(CodechatTestDaemon) daemon =
		    codechat_test_daemon_start_in(copy, "0.0.0.0:0", args);
		assert_welcome(daemon->uri, "dave", NULL, NULL);
		g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
	}

	/* the same from the environment and from the config file; these
	 * daemons are stopped by a signal as soon as they listen */
	{
		g_autoptr(GSubprocessLauncher) launcher = NULL;
		g_autoptr(GSubprocess) proc = NULL;
		g_autoptr(GDataInputStream) out = NULL;
		g_autoptr(GError) error = NULL;
		g_autofree gchar *line = NULL;
		const gchar *const variants[][9] = {
		    {"--listen", "0.0.0.0:0", "--data-dir", dir, "--bus", "none", NULL},
		    {"--listen",
		     "0.0.0.0:0",
		     "--data-dir",
		     dir,
		     "--bus",
		     "none",
		     "--config",
		     config,
		     NULL},
		};

		g_assert_true(
		    g_file_set_contents(config, "[daemon]\nallow-anonymous=true\n", -1, NULL));
		for (guint i = 0; i < G_N_ELEMENTS(variants); i++) {
			g_autoptr(GPtrArray) argv = g_ptr_array_new();

			g_clear_object(&launcher);
			launcher = daemon_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE, dir);
			if (i == 0)
				g_subprocess_launcher_setenv(launcher,
							     "CODECHATD_ALLOW_ANONYMOUS",
							     "true",
							     TRUE);
			g_ptr_array_add(argv, (gpointer)codechat_test_daemon_path());
			for (guint j = 0; variants[i][j] != NULL; j++)
				g_ptr_array_add(argv, (gpointer)variants[i][j]);
			g_ptr_array_add(argv, NULL);
			g_clear_object(&proc);
			proc = g_subprocess_launcher_spawnv(launcher,
							    (const gchar *const *)argv->pdata,
							    &error);
			g_assert_no_error(error);
			g_clear_object(&out);
			out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(proc));
			/* EOF (NULL) if it refused to start */
			g_clear_pointer(&line, g_free);
			line = g_data_input_stream_read_line_utf8(out, NULL, NULL, &error);
			g_assert_no_error(error);
			g_assert_nonnull(line);
			g_assert_nonnull(strstr(line, "ws://0.0.0.0:"));
			g_subprocess_send_signal(proc, SIGTERM);
			g_assert_cmpint(codechat_test_wait_exit(proc, RUN_TIMEOUT_MS), ==, 0);
		}
	}

	/* an account is enough, and then hello needs its token */
	{
		g_autofree gchar *copy = make_data_dir();
		g_autofree gchar *alice = add_user(copy, "alice");
		g_autoptr(CodechatTestDaemon) daemon =
		    codechat_test_daemon_start_in(copy, "0.0.0.0:0", NULL);
		assert_refused(daemon->uri, "dave", NULL);
		assert_welcome(daemon->uri, "alice", alice, NULL);
		/* the last account removed: still nobody without a token */
		g_assert_cmpint(run_user(copy, NULL, NULL, "remove", "alice", NULL), ==, 0);
		assert_refused(daemon->uri, "alice", alice);
		assert_refused(daemon->uri, "dave", NULL);
		g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
	}

	/* loopback by name needs nothing */
	{
		g_autofree gchar *copy = make_data_dir();
		g_autoptr(CodechatTestDaemon) daemon =
		    codechat_test_daemon_start_in(copy, "localhost:0", NULL);
		g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
	}

	codechat_test_rm_rf(dir);
}

/* the real client: exit 3 and the server's code when refused */
static void
test_client_exit(void)
{
	g_autofree gchar *dir = make_data_dir();
	g_autofree gchar *alice = add_user(dir, "alice");
	g_autoptr(CodechatTestDaemon) daemon = codechat_test_daemon_start_in(dir, NULL, NULL);
	g_autofree gchar *env_wrong = g_strdup("CODECHAT_TOKEN=not-the-token");
	g_autofree gchar *env_right = g_strconcat("CODECHAT_TOKEN=", alice, NULL);
	const gchar *wrong[] = {env_wrong, NULL};
	const gchar *right[] = {env_right, NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(codechat_test_client_run(wrong,
						 NULL,
						 &out,
						 &err,
						 "--server",
						 daemon->uri,
						 "--nick",
						 "alice",
						 "send",
						 "--room",
						 "general",
						 "hi",
						 NULL),
			==,
			3);
	g_assert_nonnull(strstr(err, "auth-failed"));
	/* the token is a secret: the client does not repeat it */
	g_assert_null(strstr(err, "not-the-token"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	g_assert_cmpint(codechat_test_client_run(NULL,
						 NULL,
						 &out,
						 &err,
						 "--server",
						 daemon->uri,
						 "--nick",
						 "alice",
						 "send",
						 "--room",
						 "general",
						 "hi",
						 NULL),
			==,
			3);
	g_assert_nonnull(strstr(err, "auth-failed"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);

	g_assert_cmpint(codechat_test_client_run(right,
						 NULL,
						 &out,
						 &err,
						 "--server",
						 daemon->uri,
						 "--nick",
						 "alice",
						 "send",
						 "--room",
						 "general",
						 "hi",
						 NULL),
			==,
			0);

	g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
}

static void
drop_debug(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user_data)
{
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	/* GTest prints every unstructured debug message; libsoup's and GIO's
	 * would drown the log, so show them only when asked to */
	if (g_getenv("G_MESSAGES_DEBUG") == NULL) {
		const gchar *domains[] = {"libsoup", "GLib-GIO", "GLib", "Json"};
		for (guint i = 0; i < G_N_ELEMENTS(domains); i++)
			g_log_set_handler(domains[i], G_LOG_LEVEL_DEBUG, drop_debug, NULL);
	}

	g_test_add_func("/codechat/accounts/user-commands", test_user_commands);
	g_test_add_func("/codechat/accounts/hello", test_hello);
	g_test_add_func("/codechat/accounts/remove-while-connected", test_remove_while_connected);
	g_test_add_func("/codechat/accounts/add-while-running", test_add_while_running);
	g_test_add_func("/codechat/accounts/protected-mode", test_protected_mode);
	g_test_add_func("/codechat/accounts/client-exit", test_client_exit);
	return g_test_run();
}
