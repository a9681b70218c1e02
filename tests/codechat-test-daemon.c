/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "codechat-test-daemon.h"

const gchar *
codechat_test_daemon_path(void)
{
	const gchar *path = g_getenv("CODECHATD");
	g_assert_nonnull(path); /* set by tests/meson.build */
	return path;
}

const gchar *
codechat_test_client_path(void)
{
	const gchar *path = g_getenv("CODECHAT");
	g_assert_nonnull(path); /* set by tests/meson.build */
	return path;
}

static void
die_with_parent(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/*
 * Redis mode: with $CODECHAT_TEST_REDIS set to a redis-server program
 * (`meson test --setup redis`), every daemon keeps its history in a Redis
 * of its data dir's own, started on a unix socket in that dir the first
 * time a daemon starts there and kept until the data dir is removed: a
 * daemon restarted on the same data dir finds its history again, as with
 * SQLite, and tests stay apart from each other.
 */
static GHashTable *redis_servers; /* (owned) data dir → (owned) GSubprocess */

static gboolean
redis_answers(const gchar *socket_path)
{
	g_autoptr(GSocketClient) client = g_socket_client_new();
	g_autoptr(GSocketAddress) address = g_unix_socket_address_new(socket_path);
	g_autoptr(GSocketConnection) conn = NULL;
	gchar reply[16] = {0};
	gssize n;

	conn = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(address), NULL, NULL);
	if (conn == NULL)
		return FALSE;
	if (!g_output_stream_write_all(g_io_stream_get_output_stream(G_IO_STREAM(conn)),
				       "PING\r\n",
				       6,
				       NULL,
				       NULL,
				       NULL))
		return FALSE;
	n = g_input_stream_read(g_io_stream_get_input_stream(G_IO_STREAM(conn)),
				reply,
				sizeof reply - 1,
				NULL,
				NULL);
	return n > 0 && g_str_has_prefix(reply, "+PONG");
}

/**
 * codechat_test_daemon_redis_start:
 * @redis_server: the redis-server program
 * @data_dir: the folder of its socket and its append-only file
 *
 * Starts the Redis of @data_dir, unless it runs, and returns its URL,
 * unix://DATA_DIR/redis.sock.  Its data survive codechat_test_daemon_redis_stop()
 * and a start again on the same @data_dir (appendfsync always).
 */
gchar *
codechat_test_daemon_redis_start(const gchar *redis_server, const gchar *data_dir)
{
	g_autofree gchar *socket_path = g_build_filename(data_dir, "redis.sock", NULL);
	g_autoptr(GError) error = NULL;

	if (redis_servers == NULL)
		redis_servers =
		    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_object_unref);
	if (!g_hash_table_contains(redis_servers, data_dir)) {
		g_autoptr(GSubprocessLauncher) launcher =
		    g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
		GSubprocess *proc;

		g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
		/* every acknowledged message on disk before the reply, as
		 * README asks of a production Redis */
		proc = g_subprocess_launcher_spawn(launcher,
						   &error,
						   redis_server,
						   "--port",
						   "0",
						   "--unixsocket",
						   socket_path,
						   "--unixsocketperm",
						   "700",
						   "--dir",
						   data_dir,
						   "--save",
						   "",
						   "--appendonly",
						   "yes",
						   "--appendfsync",
						   "always",
						   "--daemonize",
						   "no",
						   NULL);
		g_assert_no_error(error);
		g_hash_table_insert(redis_servers, g_strdup(data_dir), proc);
		for (guint i = 0; !redis_answers(socket_path); i++) {
			/* five seconds, or redis-server failed: its stderr says why */
			g_assert_cmpuint(i, <, 500);
			g_usleep(10 * 1000);
		}
	}
	return g_strconcat("unix://", socket_path, NULL);
}

/* stops the Redis of @data_dir, if one runs, and waits for it */
void
codechat_test_daemon_redis_stop(const gchar *data_dir)
{
	GSubprocess *proc;

	if (redis_servers == NULL)
		return;
	proc = g_hash_table_lookup(redis_servers, data_dir);
	if (proc == NULL)
		return;
	g_subprocess_send_signal(proc, SIGTERM);
	g_subprocess_wait(proc, NULL, NULL);
	g_hash_table_remove(redis_servers, data_dir);
}

/**
 * codechat_test_daemon_start:
 * @extra_args: (nullable): more arguments for codechatd
 *
 * Starts codechatd on 127.0.0.1 port 0 with a fresh data dir and waits for
 * the line in which it says where it listens.  The daemon's stderr goes to
 * the test's stderr, so its logs show up in the test log.
 *
 * $CODECHAT_TEST_DAEMON_WRAPPER, a command line that `meson test --setup
 * valgrind` sets, goes before codechatd: the wrapper's verdict is the exit
 * status that codechat_test_daemon_stop() returns.
 */
CodechatTestDaemon *
codechat_test_daemon_start(const gchar *const *extra_args)
{
	return codechat_test_daemon_start_in(NULL, NULL, extra_args);
}

/**
 * codechat_test_daemon_start_in:
 * @data_dir: (nullable): an existing data dir, which the daemon takes over
 *   (it is removed by codechat_test_daemon_free()), or %NULL for a fresh one
 * @listen: (nullable): the listen address, or %NULL for 127.0.0.1:0
 * @extra_args: (nullable): more arguments for codechatd
 *
 * Like codechat_test_daemon_start().  The URIs always name 127.0.0.1,
 * also for a daemon that listens on 0.0.0.0.
 */
CodechatTestDaemon *
codechat_test_daemon_start_in(const gchar *data_dir,
			      const gchar *listen,
			      const gchar *const *extra_args)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GDataInputStream) out = NULL;
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autofree gchar *line = NULL;
	g_auto(GStrv) wrapper = NULL;
	CodechatTestDaemon *daemon = g_new0(CodechatTestDaemon, 1);
	const gchar *wrapper_line = g_getenv("CODECHAT_TEST_DAEMON_WRAPPER");
	const gchar *redis_server = g_getenv("CODECHAT_TEST_REDIS");
	g_autofree gchar *redis_url = NULL;
	gboolean has_redis = FALSE;
	const gchar *effective_dir;
	const gchar *p;

	if (data_dir != NULL) {
		daemon->data_dir = g_strdup(data_dir);
	} else {
		daemon->data_dir = g_dir_make_tmp("codechat-test-XXXXXX", &error);
		g_assert_no_error(error);
	}

	if (wrapper_line != NULL && wrapper_line[0] != '\0') {
		g_shell_parse_argv(wrapper_line, NULL, &wrapper, &error);
		g_assert_no_error(error);
		for (guint i = 0; wrapper[i] != NULL; i++)
			g_ptr_array_add(argv, wrapper[i]);
	}
	g_ptr_array_add(argv, (gpointer)codechat_test_daemon_path());
	g_ptr_array_add(argv, (gpointer) "--listen");
	g_ptr_array_add(argv, (gpointer)(listen != NULL ? listen : "127.0.0.1:0"));
	g_ptr_array_add(argv, (gpointer) "--data-dir");
	g_ptr_array_add(argv, daemon->data_dir);
	effective_dir = daemon->data_dir;
	for (guint i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
		g_ptr_array_add(argv, (gpointer)extra_args[i]);
		if (g_str_has_prefix(extra_args[i], "--redis"))
			has_redis = TRUE;
		/* the last --data-dir wins, also for the Redis that goes with it */
		if (g_str_equal(extra_args[i], "--data-dir") && extra_args[i + 1] != NULL)
			effective_dir = extra_args[i + 1];
		else if (g_str_has_prefix(extra_args[i], "--data-dir="))
			effective_dir = extra_args[i] + strlen("--data-dir=");
	}
	/* a test that picks its own Redis keeps it */
	if (redis_server != NULL && redis_server[0] != '\0' && !has_redis) {
		redis_url = codechat_test_daemon_redis_start(redis_server, effective_dir);
		g_ptr_array_add(argv, (gpointer) "--redis");
		g_ptr_array_add(argv, redis_url);
	}
	g_ptr_array_add(argv, NULL);

	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE);
	/* a test that aborts must not leave its daemon behind */
	g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
	/* no config file or CODECHATD_* variable of the machine's may leak in;
	 * the test-only CODECHATD_TEST_* are the test's own (test-redis.c) */
	{
		g_auto(GStrv) env = g_get_environ();
		for (guint i = 0; env[i] != NULL; i++) {
			if (g_str_has_prefix(env[i], "CODECHATD_") &&
			    !g_str_has_prefix(env[i], "CODECHATD_TEST_")) {
				g_autofree gchar *name = g_strndup(env[i], strcspn(env[i], "="));
				g_subprocess_launcher_unsetenv(launcher, name);
			}
		}
		g_subprocess_launcher_setenv(launcher, "XDG_CONFIG_HOME", daemon->data_dir, TRUE);
		if (g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS") != NULL)
			g_subprocess_launcher_setenv(launcher,
						     "ASAN_OPTIONS",
						     g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS"),
						     TRUE);
	}
	daemon->proc =
	    g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);

	out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(daemon->proc));
	line = g_data_input_stream_read_line_utf8(out, NULL, NULL, &error);
	g_assert_no_error(error);
	g_assert_nonnull(line);
	/* wss:// when the daemon has a certificate */
	daemon->tls = (p = strstr(line, "wss://")) != NULL;
	if (p == NULL)
		p = strstr(line, "ws://");
	g_assert_nonnull(p);
	{
		g_autoptr(GUri) guri = g_uri_parse(p, G_URI_FLAGS_NONE, &error);
		g_assert_no_error(error);
		daemon->port = (guint16)g_uri_get_port(guri);
		/* as printed, unless the daemon listens on 0.0.0.0 */
		if (g_strcmp0(g_uri_get_host(guri), "0.0.0.0") == 0)
			daemon->uri = g_strdup_printf("%s://127.0.0.1:%u%s",
						      daemon->tls ? "wss" : "ws",
						      daemon->port,
						      g_uri_get_path(guri));
		else
			daemon->uri = g_strdup(p);
		daemon->http_base = g_strdup_printf("%s://127.0.0.1:%u",
						    daemon->tls ? "https" : "http",
						    daemon->port);
	}
	g_assert_cmpuint(daemon->port, >, 0);
	return daemon;
}

/**
 * codechat_test_daemon_stop:
 *
 * Sends SIGTERM and waits.  Returns the exit status, which must be 0: the
 * daemon closes every session and exits cleanly (and under the sanitizers
 * a leak or an error report makes it non-zero).
 */
gint
codechat_test_daemon_stop(CodechatTestDaemon *daemon)
{
	g_autoptr(GError) error = NULL;

	if (daemon->proc == NULL)
		return -1;
	g_subprocess_send_signal(daemon->proc, SIGTERM);
	g_subprocess_wait(daemon->proc, NULL, &error);
	g_assert_no_error(error);
	if (!g_subprocess_get_if_exited(daemon->proc))
		return -1;
	return g_subprocess_get_exit_status(daemon->proc);
}

/* removes @path and everything below it */
void
codechat_test_rm_rf(const gchar *path)
{
	g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
	const gchar *name;

	if (dir != NULL) {
		while ((name = g_dir_read_name(dir)) != NULL) {
			g_autofree gchar *child = g_build_filename(path, name, NULL);
			if (g_file_test(child, G_FILE_TEST_IS_DIR) &&
			    !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
				codechat_test_rm_rf(child);
			else
				g_unlink(child);
		}
	}
	g_rmdir(path);
}

void
codechat_test_daemon_free(CodechatTestDaemon *daemon)
{
	if (daemon == NULL)
		return;
	/* the identifier is NULL once the process was waited for */
	if (daemon->proc != NULL && g_subprocess_get_identifier(daemon->proc) != NULL) {
		g_subprocess_force_exit(daemon->proc);
		g_subprocess_wait(daemon->proc, NULL, NULL);
	}
	g_clear_object(&daemon->proc);
	if (daemon->data_dir != NULL) {
		codechat_test_daemon_redis_stop(daemon->data_dir);
		codechat_test_rm_rf(daemon->data_dir);
	}
	g_free(daemon->data_dir);
	g_free(daemon->uri);
	g_free(daemon->http_base);
	g_free(daemon);
}
