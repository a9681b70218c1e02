/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "codechat-test-client.h"
#include "codechat-test-daemon.h"

/* Running the real `codechat` binary from a test: every run and every wait
 * is bounded, so that a hang fails instead of stalling the suite. */

/* an empty config dir of the test program's own, removed at exit */
static gchar *config_home_dir = NULL;

static void
remove_config_home(void)
{
	g_autofree gchar *command = NULL;

	if (config_home_dir == NULL)
		return;
	/* what the client saved: a few small files */
	command = g_strdup_printf("rm -rf '%s'", config_home_dir);
	if (system(command) != 0)
		g_printerr("cannot remove %s\n", config_home_dir);
}

static const gchar *
config_home(void)
{
	if (config_home_dir == NULL) {
		g_autoptr(GError) error = NULL;
		config_home_dir = g_dir_make_tmp("codechat-test-config-XXXXXX", &error);
		g_assert_no_error(error);
		atexit(remove_config_home);
	}
	return config_home_dir;
}

/* main loop helpers */

gboolean
codechat_test_flag_cb(gpointer user_data)
{
	*(gboolean *)user_data = TRUE;
	return G_SOURCE_REMOVE;
}

/* iterates the main context until *done or @timeout_ms; TRUE if done */
gboolean
codechat_test_wait_until(gboolean *done, guint timeout_ms)
{
	gboolean timed_out = FALSE;
	guint id = g_timeout_add(timeout_ms, codechat_test_flag_cb, &timed_out);

	while (!*done && !timed_out)
		g_main_context_iteration(NULL, TRUE);
	if (!timed_out)
		g_source_remove(id);
	return *done;
}

void
codechat_test_sleep_ms(guint ms)
{
	gboolean done = FALSE;

	g_timeout_add(ms, codechat_test_flag_cb, &done);
	while (!done)
		g_main_context_iteration(NULL, TRUE);
}

/* running the client */

/* a client must not outlive a test that failed half-way */
static void
child_setup(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

GSubprocessLauncher *
codechat_test_client_launcher_new(GSubprocessFlags flags, const gchar *const *env)
{
	GSubprocessLauncher *launcher = g_subprocess_launcher_new(flags);

	g_subprocess_launcher_set_child_setup(launcher, child_setup, NULL, NULL);

	/* the settings come from the test, not from whoever runs it */
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_SERVER");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_NICK");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_ROOM");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_TOKEN");
	g_subprocess_launcher_unsetenv(launcher, "G_MESSAGES_DEBUG");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_NOTIFY");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_COLOR");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_HISTORY_LIMIT");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_LOG_FORMAT");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_CA_FILE");
	g_subprocess_launcher_setenv(launcher, "NO_COLOR", "1", TRUE);
	/* nor from the user's tokens file */
	g_subprocess_launcher_setenv(launcher, "XDG_CONFIG_HOME", config_home(), TRUE);
	/* leaks are checked in the programs, not in the tests (see meson.build) */
	if (g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS") != NULL)
		g_subprocess_launcher_setenv(launcher,
					     "ASAN_OPTIONS",
					     g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS"),
					     TRUE);
	for (guint i = 0; env != NULL && env[i] != NULL; i++) {
		g_auto(GStrv) pair = g_strsplit(env[i], "=", 2);

		g_assert_nonnull(pair[1]);
		g_subprocess_launcher_setenv(launcher, pair[0], pair[1], TRUE);
	}
	return launcher;
}

static GPtrArray *
argv_new(const gchar *first, va_list args)
{
	GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
	const gchar *arg;

	g_ptr_array_add(argv, g_strdup(codechat_test_client_path()));
	for (arg = first; arg != NULL; arg = va_arg(args, const gchar *))
		g_ptr_array_add(argv, g_strdup(arg));
	g_ptr_array_add(argv, NULL);
	return argv;
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

void
codechat_test_wait_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	gboolean *done = user_data;

	g_subprocess_wait_finish(G_SUBPROCESS(source), result, NULL);
	*done = TRUE;
}

/* waits for @proc to exit, killing it after @timeout_ms; returns its exit status */
gint
codechat_test_wait_exit(GSubprocess *proc, guint timeout_ms)
{
	gboolean done = FALSE;

	g_subprocess_wait_async(proc, NULL, codechat_test_wait_cb, &done);
	if (!codechat_test_wait_until(&done, timeout_ms)) {
		g_subprocess_force_exit(proc);
		codechat_test_wait_until(&done, timeout_ms);
		g_assert_true(done);
		g_assert_not_reached(); /* the client hung */
	}
	/* a crash or an abort is never the answer */
	g_assert_true(g_subprocess_get_if_exited(proc));
	return g_subprocess_get_exit_status(proc);
}

/**
 * codechat_test_client_run:
 * @env: (nullable): KEY=VALUE pairs for the client's environment
 * @input: (nullable): its standard input, else empty
 * @out: (out): its standard output
 * @err: (out): its standard error
 * @first: the first argument, then more, then %NULL
 *
 * Runs codechat and returns its exit status.
 */
gint
codechat_test_client_run(const gchar *const *env,
			 const gchar *input,
			 gchar **out,
			 gchar **err,
			 const gchar *first,
			 ...)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GPtrArray) argv = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *cmdline = NULL;
	Communicate c = {FALSE};
	va_list args;
	gint status;

	va_start(args, first);
	argv = argv_new(first, args);
	va_end(args);
	cmdline = g_strjoinv(" ", (gchar **)argv->pdata + 1);
	g_test_message("$ codechat %.200s", cmdline);

	launcher = codechat_test_client_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE |
							 G_SUBPROCESS_FLAGS_STDOUT_PIPE |
							 G_SUBPROCESS_FLAGS_STDERR_PIPE,
						     env);
	proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	g_subprocess_communicate_utf8_async(proc,
					    input != NULL ? input : "",
					    NULL,
					    communicate_cb,
					    &c);
	if (!codechat_test_wait_until(&c.done, RUN_TIMEOUT_MS)) {
		g_subprocess_force_exit(proc);
		codechat_test_wait_until(&c.done, RUN_TIMEOUT_MS);
		g_assert_not_reached(); /* the client hung */
	}
	g_assert_no_error(c.error);
	status = codechat_test_wait_exit(proc, RUN_TIMEOUT_MS);
	g_test_message("exit status %d\nstdout: %.2000s\nstderr: %.2000s", status, c.out, c.err);
	*out = c.out;
	*err = c.err;
	return codechat_test_exit_status(status, c.err);
}

/**
 * codechat_test_exit_status:
 * @status: a client's exit status
 * @err: all it wrote on stderr
 *
 * In the sanitizer build, LeakSanitizer (clang 14) now and then crashes in
 * its own stop-the-world at the exit of a process with threads ("Tracer
 * caught signal 11", see meson.build), more often under load: then no
 * leak check ran, and the exit status says nothing about the client.  That
 * crash, and only that, counts as exit status 0; a leak report or any
 * other error does not.
 */
gint
codechat_test_exit_status(gint status, const gchar *err)
{
	if (status != 0 && err != NULL && strstr(err, "Tracer caught signal") != NULL &&
	    strstr(err, "LeakSanitizer has encountered a fatal error") != NULL &&
	    strstr(err, "ERROR: LeakSanitizer: detected memory leaks") == NULL &&
	    strstr(err, "ERROR: AddressSanitizer") == NULL &&
	    strstr(err, "runtime error:") == NULL) {
		g_printerr("LeakSanitizer crashed at the client's exit: no leak check\n");
		return 0;
	}
	return status;
}
/*
 * g_test_dbus_up() in GLib 2.74 tells dbus-daemon --print-address=N with N
 * the write end of a pipe it passes on by number; when the two ends of that
 * pipe are not neighbours (the test freed some descriptors below it, e.g.
 * the sockets of the last case's WebSocket clients) the child does not get
 * the pipe at N, and g_test_dbus_up() waits forever for the address.  Fill
 * the holes first so that its pipe gets two neighbouring descriptors.
 *
 * dbus-daemon, and every service it starts, inherit its standard output,
 * which is the test's TAP stream: they get /dev/null instead.
 */
void
codechat_test_dbus_up(GTestDBus *bus)
{
	g_autoptr(GArray) fillers = g_array_new(FALSE, FALSE, sizeof(gint));
	gint saved_stdout;
	gint devnull;

	fflush(stdout);
	saved_stdout = dup(STDOUT_FILENO);
	g_assert_cmpint(saved_stdout, >=, 0);
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	g_assert_cmpint(devnull, >=, 0);
	g_assert_cmpint(dup2(devnull, STDOUT_FILENO), ==, STDOUT_FILENO);
	close(devnull);

	for (guint i = 0; i < 64; i++) {
		gint fds[2];

		g_assert_cmpint(pipe(fds), ==, 0);
		if (fds[1] == fds[0] + 1) {
			close(fds[0]);
			close(fds[1]);
			break;
		}
		g_array_append_val(fillers, fds[0]);
		close(fds[1]);
	}
	g_test_dbus_up(bus);
	for (guint i = 0; i < fillers->len; i++)
		close(g_array_index(fillers, gint, i));

	g_assert_cmpint(dup2(saved_stdout, STDOUT_FILENO), ==, STDOUT_FILENO);
	close(saved_stdout);
}

/* a background client's stderr --------------------------------------------- */

static void
err_reader_clear(CodechatTestErrReader *r)
{
	g_clear_object(&r->stream);
	g_clear_object(&r->cancellable);
	g_string_free(r->text, TRUE);
}

void
codechat_test_err_reader_unref(CodechatTestErrReader *r)
{
	g_rc_box_release_full(r, (GDestroyNotify)err_reader_clear);
}

static void
err_read_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	CodechatTestErrReader *r = user_data;
	g_autoptr(GBytes) bytes = NULL;
	gsize size;

	bytes = g_input_stream_read_bytes_finish(G_INPUT_STREAM(source), result, NULL);
	if (bytes == NULL || g_bytes_get_size(bytes) == 0) {
		r->eof = TRUE;
		codechat_test_err_reader_unref(r);
		return;
	}
	size = g_bytes_get_size(bytes);
	if (r->echo)
		fwrite(g_bytes_get_data(bytes, NULL), 1, size, stderr);
	g_string_append_len(r->text, g_bytes_get_data(bytes, NULL), (gssize)size);
	g_input_stream_read_bytes_async(r->stream,
					4096,
					G_PRIORITY_DEFAULT,
					r->cancellable,
					err_read_cb,
					r);
}

/**
 * codechat_test_err_reader_new:
 * @echo: whether to copy what comes to the test's stderr (the test log)
 *
 * Reads what a background client writes on @stream as it comes, so that
 * the pipe never fills, and keeps it in ->text.  Reference-counted, as a
 * read may still be pending when its client goes: cancel ->cancellable,
 * then unref.
 */
CodechatTestErrReader *
codechat_test_err_reader_new(GInputStream *stream, gboolean echo)
{
	CodechatTestErrReader *r = g_rc_box_new0(CodechatTestErrReader);

	r->stream = g_object_ref(stream);
	r->cancellable = g_cancellable_new();
	r->text = g_string_new(NULL);
	r->echo = echo;
	g_input_stream_read_bytes_async(r->stream,
					4096,
					G_PRIORITY_DEFAULT,
					r->cancellable,
					err_read_cb,
					g_rc_box_acquire(r));
	return r;
}

/* a TCP relay the test can cut ----------------------------------------- */

static void
relay_splice_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_io_stream_splice_finish(result, NULL);
}

static gboolean
relay_incoming_cb(GSocketService *service,
		  GSocketConnection *connection,
		  GObject *source_object,
		  gpointer user_data)
{
	CodechatTestRelay *relay = user_data;
	g_autoptr(GSocketClient) client = g_socket_client_new();
	g_autoptr(GSocketConnection) upstream = NULL;
	g_autoptr(GError) error = NULL;

	if (relay->refuse) {
		g_io_stream_close(G_IO_STREAM(connection), NULL, NULL);
		return TRUE;
	}
	upstream = g_socket_client_connect_to_host(client,
						   "127.0.0.1",
						   relay->upstream_port,
						   NULL,
						   &error);
	g_assert_no_error(error);
	relay->accepted++;
	g_ptr_array_add(relay->streams, g_object_ref(connection));
	g_ptr_array_add(relay->streams, g_object_ref(upstream));
	g_io_stream_splice_async(G_IO_STREAM(connection),
				 G_IO_STREAM(upstream),
				 G_IO_STREAM_SPLICE_CLOSE_STREAM1 |
				     G_IO_STREAM_SPLICE_CLOSE_STREAM2,
				 G_PRIORITY_DEFAULT,
				 NULL,
				 relay_splice_cb,
				 NULL);
	return TRUE;
}

CodechatTestRelay *
codechat_test_relay_new(guint16 upstream_port)
{
	g_autoptr(GError) error = NULL;
	CodechatTestRelay *relay = g_new0(CodechatTestRelay, 1);

	relay->upstream_port = upstream_port;
	relay->streams = g_ptr_array_new_with_free_func(g_object_unref);
	relay->service = g_socket_service_new();
	relay->port =
	    g_socket_listener_add_any_inet_port(G_SOCKET_LISTENER(relay->service), NULL, &error);
	g_assert_no_error(error);
	relay->uri = g_strdup_printf("ws://127.0.0.1:%u/v1/ws", relay->port);
	g_signal_connect(relay->service, "incoming", G_CALLBACK(relay_incoming_cb), relay);
	g_socket_service_start(relay->service);
	return relay;
}

/* drops every relayed connection */
void
codechat_test_relay_cut(CodechatTestRelay *relay)
{
	for (guint i = 0; i < relay->streams->len; i++)
		g_io_stream_close(g_ptr_array_index(relay->streams, i), NULL, NULL);
	g_ptr_array_set_size(relay->streams, 0);
}

void
codechat_test_relay_free(CodechatTestRelay *relay)
{
	codechat_test_relay_cut(relay);
	g_socket_service_stop(relay->service);
	g_socket_listener_close(G_SOCKET_LISTENER(relay->service));
	g_signal_handlers_disconnect_by_data(relay->service, relay);
	g_clear_object(&relay->service);
	g_ptr_array_unref(relay->streams);
	g_free(relay->uri);
	g_free(relay);
}
