/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <gio/gio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "codechat-test-client.h"
#include "codechat-test-daemon.h"
#include "codechat-test-notifications.h"

/*
 * Desktop notifications end to end: the real `codechat watch` and
 * `codechat chat` against a real codechatd, with another participant
 * posting through `codechat send`, and a recording fake of
 * org.freedesktop.Notifications (outside the project, see
 * codechat-test-notifications.h) on a private session bus that the
 * clients get in DBUS_SESSION_BUS_ADDRESS.
 *
 * The notifier coalesces a room's burst within a window of seconds into
 * one notification updated in place: every expectation here is the first
 * notification of its room in its process, so no case waits for a window.
 *
 * Every case runs in a subprocess of its own (one GTestDBus each, and a
 * timeout on the whole), and every wait is bounded.
 */

#define APP_ID		"io.github.codechat.Codechat"
#define CASE_TIMEOUT_US (90 * G_USEC_PER_SEC)

typedef struct {
	CodechatTestDaemon *daemon;	 /* (owned) */
	GTestDBus *bus;			 /* (owned) */
	CodechatTestNotifications *fake; /* (owned) */
	gchar *config_home;		 /* (owned) the clients' XDG_CONFIG_HOME */
	gchar *env_bus;			 /* (owned) DBUS_SESSION_BUS_ADDRESS=… */
	gchar *env_home;		 /* (owned) XDG_CONFIG_HOME=… */
} Fixture;

static void
fixture_set_up(Fixture *f)
{
	g_autoptr(GError) error = NULL;

	/* the daemon first: it serves no D-Bus (its environment has an empty
	 * DBUS_SESSION_BUS_ADDRESS, see meson.build), then the private bus */
	f->daemon = codechat_test_daemon_start(NULL);
	f->bus = g_test_dbus_new(G_TEST_DBUS_NONE);
	codechat_test_dbus_up(f->bus);
	f->fake = codechat_test_notifications_start(f->bus, FALSE, FALSE);
	f->config_home = g_dir_make_tmp("codechat-notify-XXXXXX", &error);
	g_assert_no_error(error);
	f->env_bus =
	    g_strdup_printf("DBUS_SESSION_BUS_ADDRESS=%s", g_test_dbus_get_bus_address(f->bus));
	f->env_home = g_strdup_printf("XDG_CONFIG_HOME=%s", f->config_home);
}

static void
fixture_tear_down(Fixture *f)
{
	g_assert_cmpint(codechat_test_daemon_stop(f->daemon), ==, 0);
	g_clear_pointer(&f->daemon, codechat_test_daemon_free);
	g_clear_pointer(&f->fake, codechat_test_notifications_stop);
	g_test_dbus_down(f->bus);
	g_clear_object(&f->bus);
	codechat_test_rm_rf(f->config_home);
	g_free(f->config_home);
	g_free(f->env_bus);
	g_free(f->env_home);
}

/* the clients' environment: the private bus, the private config dir, and
 * @extra (KEY=VALUE, %NULL-terminated) */
static GStrv
client_env(Fixture *f, const gchar *const *extra)
{
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new();

	g_strv_builder_add(builder, f->env_bus);
	g_strv_builder_add(builder, f->env_home);
	/* libnotify talks to the bus, never to a portal */
	g_strv_builder_add(builder, "NOTIFY_IGNORE_PORTAL=1");
	if (extra != NULL)
		g_strv_builder_addv(builder, (const gchar **)extra);
	return g_strv_builder_end(builder);
}

/* `codechat send`, as @nick, to @room of the daemon */
static void
post(Fixture *f, const gchar *nick, const gchar *room, const gchar *text)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(codechat_test_run(&out,
					  &err,
					  "--server",
					  f->daemon->uri,
					  "--nick",
					  nick,
					  "send",
					  "--room",
					  room,
					  text),
			==,
			0);
}

/* `codechat config set KEY VALUE` with the keyfile backend in the
 * private config dir */
static void
config_set(Fixture *f, const gchar *key, const gchar *value)
{
	const gchar *const extra[] = {"GSETTINGS_BACKEND=keyfile", NULL};
	g_auto(GStrv) env = client_env(f, extra);
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(codechat_test_client_run((const gchar *const *)env,
						 NULL,
						 &out,
						 &err,
						 "config",
						 "set",
						 key,
						 value,
						 NULL),
			==,
			0);
}

/* is @nick among the members of @room, by `codechat who --json`? */
static gboolean
is_member(Fixture *f, const gchar *room, const gchar *nick)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *needle = g_strdup_printf("\"nick\":\"%s\"", nick);

	g_assert_cmpint(codechat_test_run(&out,
					  &err,
					  "--server",
					  f->daemon->uri,
					  "--nick",
					  "poller",
					  "who",
					  "--json",
					  "--room",
					  room),
			==,
			0);
	return strstr(out, needle) != NULL;
}

static void
wait_member(Fixture *f, const gchar *room, const gchar *nick, gboolean present)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_TIMEOUT_MS * 1000;

	while (is_member(f, room, nick) != present) {
		g_assert_cmpint(g_get_monotonic_time(), <, deadline);
		codechat_test_sleep_ms(POLL_INTERVAL_MS);
	}
}

/* a client running in the background: `watch` or `chat` */
typedef struct {
	GSubprocess *proc;	    /* (owned) */
	GDataInputStream *out;	    /* (owned) */
	CodechatTestErrReader *err; /* (owned) */
	gboolean stopped;
} Client;

static void
client_free(Client *c)
{
	/* the exit status can only be asked once the process was waited for */
	if (!c->stopped) {
		gboolean done = FALSE;

		g_subprocess_force_exit(c->proc);
		g_subprocess_wait_async(c->proc, NULL, codechat_test_wait_cb, &done);
		codechat_test_wait_until(&done, RUN_TIMEOUT_MS);
	}
	g_cancellable_cancel(c->err->cancellable);
	codechat_test_err_reader_unref(c->err);
	g_clear_object(&c->out);
	g_clear_object(&c->proc);
	g_free(c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Client, client_free)

/* starts `codechat --server SERVER --nick NICK ARGS…` (SERVER: the
 * daemon's if %NULL) in @env_extra, with
 * its stdin a pipe that stays open, its stdout read line by line and its
 * stderr kept (and copied to the test log) */
static Client *
client_start(Fixture *f,
	     const gchar *server,
	     const gchar *nick,
	     const gchar *const *env_extra,
	     const gchar *const *args)
{
	g_auto(GStrv) env = client_env(f, env_extra);
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GError) error = NULL;
	g_autofree gchar *cmdline = NULL;
	Client *c = g_new0(Client, 1);

	g_ptr_array_add(argv, (gpointer)codechat_test_client_path());
	g_ptr_array_add(argv, (gpointer) "--server");
	g_ptr_array_add(argv, server != NULL ? (gpointer)server : f->daemon->uri);
	g_ptr_array_add(argv, (gpointer) "--nick");
	g_ptr_array_add(argv, (gpointer)nick);
	for (guint i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)args[i]);
	g_ptr_array_add(argv, NULL);
	cmdline = g_strjoinv(" ", (gchar **)args);
	g_test_message("$ codechat … %s &", cmdline);

	launcher = codechat_test_client_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE |
							 G_SUBPROCESS_FLAGS_STDOUT_PIPE |
							 G_SUBPROCESS_FLAGS_STDERR_PIPE,
						     (const gchar *const *)env);
	c->proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	c->out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(c->proc));
	c->err = codechat_test_err_reader_new(g_subprocess_get_stderr_pipe(c->proc), TRUE);
	return c;
}

typedef struct {
	gboolean done;
	gchar *line;
	GError *error;
} ReadLine;

static void
read_line_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	ReadLine *r = user_data;

	r->line = g_data_input_stream_read_line_finish_utf8(G_DATA_INPUT_STREAM(source),
							    result,
							    NULL,
							    &r->error);
	r->done = TRUE;
}

/* reads the client's stdout until a line that contains @needle; returns
 * how many of the lines read contain @counted (when not %NULL) */
static guint
client_wait_output_counting(Client *c, const gchar *needle, const gchar *counted)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_TIMEOUT_MS * 1000;
	guint n = 0;

	for (;;) {
		g_autoptr(GCancellable) cancellable = g_cancellable_new();
		g_autofree gchar *line = NULL;
		ReadLine r = {FALSE};
		gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;

		g_assert_cmpint(left_ms, >, 0); /* no such line in time */
		g_data_input_stream_read_line_async(c->out,
						    G_PRIORITY_DEFAULT,
						    cancellable,
						    read_line_cb,
						    &r);
		if (!codechat_test_wait_until(&r.done, (guint)left_ms)) {
			g_cancellable_cancel(cancellable);
			codechat_test_wait_until(&r.done, WAIT_TIMEOUT_MS);
			g_clear_error(&r.error);
			g_free(r.line);
			g_error("no line with “%s” from the client in time", needle);
		}
		g_assert_no_error(r.error);
		g_assert_nonnull(r.line); /* not the end of the output */
		line = r.line;
		g_test_message("client: %s", line);
		if (counted != NULL && strstr(line, counted) != NULL)
			n++;
		if (strstr(line, needle) != NULL)
			return n;
	}
}

/* reads the client's stdout until a line that contains @needle */
static void
client_wait_output(Client *c, const gchar *needle)
{
	client_wait_output_counting(c, needle, NULL);
}

/* waits for the client's exit, and all it wrote on stderr; returns its
 * exit status (see codechat_test_exit_status()) */
static gint
client_wait_exit(Client *c)
{
	gint status = codechat_test_wait_exit(c->proc, RUN_TIMEOUT_MS);

	c->stopped = TRUE;
	codechat_test_wait_until(&c->err->eof, WAIT_TIMEOUT_MS);
	g_assert_true(c->err->eof);
	return codechat_test_exit_status(status, c->err->text->str);
}

/* SIGTERM: a clean close and exit status 0 */
static void
client_stop(Client *c)
{
	g_subprocess_send_signal(c->proc, SIGTERM);
	g_assert_cmpint(client_wait_exit(c), ==, 0);
}

/* `codechat watch --room ROOM [FLAG]` as @nick, once it joined */
static Client *
watch_start(Fixture *f,
	    const gchar *nick,
	    const gchar *room,
	    const gchar *flag,
	    const gchar *const *env_extra)
{
	const gchar *args[] = {"--json", "watch", "--room", room, flag, NULL};
	Client *c = client_start(f, NULL, nick, env_extra, args);

	wait_member(f, room, nick, TRUE);
	return c;
}

/* waits for Notify call @i, and checks that it is the message of @from
 * in @room, as codechat-notify.c makes it */
static void
expect_call(Fixture *f, guint i, const gchar *room, const gchar *from, const gchar *text)
{
	g_autofree gchar *summary = g_strdup_printf("#%s: %s", room, from);
	CodechatTestNotifyCall *call;

	g_assert_cmpuint(codechat_test_notifications_wait(f->fake, i + 1, WAIT_TIMEOUT_MS), >, i);
	call = codechat_test_notifications_call(f->fake, i);
	g_assert_cmpstr(call->summary, ==, summary);
	g_assert_cmpstr(call->body, ==, text);
	g_assert_cmpstr(call->app_name, ==, APP_ID);
	g_assert_cmpstr(codechat_test_notify_hint_string(call->hints, "desktop-entry"), ==, APP_ID);
	g_assert_cmpstr(codechat_test_notify_hint_string(call->hints, "category"),
			==,
			"im.received");
	/* a new notification, not an update of another */
	g_assert_cmpuint(call->replaces_id, ==, 0);
}

/* @text and a marker after it reached watch, which notifies (or not) each
 * message before it reads the next one, synchronously: what @text was to
 * cause has happened once the marker is printed */
static void
post_and_settle(Fixture *f, Client *watch, const gchar *room, const gchar *text)
{
	post(f, "bob", room, text);
	post(f, "bob", room, "the marker");
	client_wait_output(watch, text);
	client_wait_output(watch, "the marker");
}

/* the cases */

/* --notify=all: another's message notifies, with what codechat-notify.c
 * sends; our own do not.  The daemon never delivers a message from our
 * nick while we are connected with it: the own message is sent while
 * watch is away, and watch gets it in the replay when it resumes. */
static void
test_watch_all(Fixture *f)
{
	g_autoptr(CodechatTestRelay) relay = codechat_test_relay_new(f->daemon->port);
	const gchar *args[] =
	    {"--json", "watch", "--room", "general", "--room", "dev", "--notify=all", NULL};
	g_autoptr(Client) watch = client_start(f, relay->uri, "alice", NULL, args);

	wait_member(f, "general", "alice", TRUE);
	wait_member(f, "dev", "alice", TRUE);
	post(f, "bob", "general", "a < b && c > d");
	expect_call(f, 0, "general", "bob", "a < b && c > d");
	client_wait_output(watch, "a < b && c > d");

	/* away: watch waits at least 0.8 s before it reconnects; frozen
	 * before that, it surely misses what follows, then replays it */
	codechat_test_relay_cut(relay);
	g_subprocess_send_signal(watch->proc, SIGSTOP);
	wait_member(f, "dev", "alice", FALSE);
	post(f, "alice", "dev", "my own words");
	post(f, "bob", "dev", "an answer to alice");
	g_subprocess_send_signal(watch->proc, SIGCONT);
	client_wait_output(watch, "my own words");
	client_wait_output(watch, "an answer to alice");
	/* the own message came first, and did not notify */
	expect_call(f, 1, "dev", "bob", "an answer to alice");
	g_assert_cmpuint(codechat_test_notifications_n_calls(f->fake), ==, 2);
	client_stop(watch);
}

/* a bare --notify with the default settings: mentions of our nick only */
static void
test_watch_bare_mentions(Fixture *f)
{
	g_autoptr(Client) watch = watch_start(f, "alice", "general", "--notify", NULL);

	post(f, "bob", "general", "hello everyone, malice aforethought");
	post(f, "bob", "general", "alice: could you look at this?");
	expect_call(f, 0, "general", "bob", "alice: could you look at this?");
	client_wait_output(watch, "hello everyone");
	client_wait_output(watch, "could you look");
	/* the plain message came first, and did not notify */
	g_assert_cmpuint(codechat_test_notifications_n_calls(f->fake), ==, 1);
	client_stop(watch);
}

/* a bare --notify takes the notify setting's mode when it is not off */
static void
test_watch_bare_setting_all(Fixture *f)
{
	const gchar *const env[] = {"GSETTINGS_BACKEND=keyfile", NULL};
	g_autoptr(Client) watch = NULL;

	config_set(f, "notify", "all");
	watch = watch_start(f, "alice", "general", "--notify", env);
	post(f, "bob", "general", "nothing special");
	expect_call(f, 0, "general", "bob", "nothing special");
	client_stop(watch);
}

/* CODECHAT_NOTIFY=all without a flag: plain messages notify */
static void
test_watch_env_all(Fixture *f)
{
	const gchar *const env[] = {"CODECHAT_NOTIFY=all", NULL};
	g_autoptr(Client) watch = watch_start(f, "alice", "general", NULL, env);

	post(f, "bob", "general", "nothing special");
	expect_call(f, 0, "general", "bob", "nothing special");
	client_stop(watch);
}

/* --notify=off beats CODECHAT_NOTIFY=all: nothing, not even a connection
 * to the notification server */
static void
test_watch_flag_beats_env(Fixture *f)
{
	const gchar *const env[] = {"CODECHAT_NOTIFY=all", NULL};
	g_autoptr(Client) watch = watch_start(f, "alice", "general", "--notify=off", env);

	post_and_settle(f, watch, "general", "alice: nothing special");
	g_assert_cmpuint(codechat_test_notifications_n_calls(f->fake), ==, 0);
	g_assert_cmpuint(codechat_test_notifications_n_other_calls(f->fake), ==, 0);
	client_stop(watch);
}

/* the notify setting, all, without a flag or CODECHAT_NOTIFY: plain
 * messages notify */
static void
test_watch_setting_all(Fixture *f)
{
	const gchar *const env[] = {"GSETTINGS_BACKEND=keyfile", NULL};
	g_autoptr(Client) watch = NULL;

	config_set(f, "notify", "all");
	watch = watch_start(f, "alice", "general", NULL, env);
	post(f, "bob", "general", "nothing special");
	expect_call(f, 0, "general", "bob", "nothing special");
	client_stop(watch);
}

/* CODECHAT_NOTIFY=off beats the notify setting, all */
static void
test_watch_env_beats_setting(Fixture *f)
{
	const gchar *const env[] = {"GSETTINGS_BACKEND=keyfile", "CODECHAT_NOTIFY=off", NULL};
	g_autoptr(Client) watch = NULL;

	config_set(f, "notify", "all");
	watch = watch_start(f, "alice", "general", NULL, env);
	post_and_settle(f, watch, "general", "alice: nothing special");
	g_assert_cmpuint(codechat_test_notifications_n_calls(f->fake), ==, 0);
	g_assert_cmpuint(codechat_test_notifications_n_other_calls(f->fake), ==, 0);
	client_stop(watch);
}

/* chat with CODECHAT_NOTIFY=all and stdin a pipe: another's live message
 * notifies; neither the backlog nor our own acknowledged message does */
static void
test_chat_env_all(Fixture *f)
{
	const gchar *const env[] = {"CODECHAT_NOTIFY=all", NULL};
	const gchar *const args[] = {"chat", "--room", "general", NULL};
	g_autoptr(Client) chat = NULL;
	GOutputStream *in;
	g_autoptr(GError) error = NULL;

	post(f, "bob", "general", "said before alice came");
	chat = client_start(f, NULL, "alice", env, args);
	in = g_subprocess_get_stdin_pipe(chat->proc);
	client_wait_output(chat, "said before alice came");
	wait_member(f, "general", "alice", TRUE);
	g_assert_true(g_output_stream_write_all(in, "my own words\n", 13, NULL, NULL, &error));
	g_assert_no_error(error);
	client_wait_output(chat, "my own words");

	post(f, "bob", "general", "welcome, alice");
	expect_call(f, 0, "general", "bob", "welcome, alice");
	client_wait_output(chat, "welcome, alice");
	g_assert_cmpuint(codechat_test_notifications_n_calls(f->fake), ==, 1);

	/* the end of the input: chat closes and exits 0 */
	g_assert_true(g_output_stream_close(in, NULL, &error));
	g_assert_no_error(error);
	g_assert_cmpint(client_wait_exit(chat), ==, 0);
}

#define UNAVAILABLE                                                                                \
	"codechat: desktop notifications are unavailable: no notification server on the "          \
	"session bus"

#define CHAT_UNAVAILABLE                                                                           \
	"-- desktop notifications are unavailable: no notification server on the session bus"

static guint
count(const gchar *haystack, const gchar *needle)
{
	guint n = 0;

	for (const gchar *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* the bus without a notification server: org.freedesktop.Notifications
 * has no owner, and nothing activates one */
static void
stop_server(Fixture *f)
{
	g_clear_pointer(&f->fake, codechat_test_notifications_stop);
}

/* --notify and no notification server: one warning on stderr however
 * many messages would have notified, every message still printed, and
 * the exit status of a clean stop */
static void
test_watch_no_server(Fixture *f)
{
	g_autoptr(Client) watch = NULL;

	stop_server(f);
	watch = watch_start(f, "alice", "general", "--notify=all", NULL);
	post(f, "bob", "general", "first");
	post(f, "bob", "general", "alice: second");
	client_wait_output(watch, "first");
	client_wait_output(watch, "alice: second");
	post_and_settle(f, watch, "general", "third");
	client_stop(watch);
	g_assert_cmpuint(count(watch->err->text->str, UNAVAILABLE), ==, 1);
}

/* the same when the notify setting asked for them, with no flag */
static void
test_watch_setting_no_server(Fixture *f)
{
	const gchar *const env[] = {"GSETTINGS_BACKEND=keyfile", NULL};
	g_autoptr(Client) watch = NULL;

	stop_server(f);
	config_set(f, "notify", "all");
	watch = watch_start(f, "alice", "general", NULL, env);
	post(f, "bob", "general", "first");
	post_and_settle(f, watch, "general", "second");
	client_stop(watch);
	g_assert_cmpuint(count(watch->err->text->str, UNAVAILABLE), ==, 1);
}

/* notifications off: no server is no news */
static void
test_watch_off_no_server(Fixture *f)
{
	g_autoptr(Client) watch = NULL;

	stop_server(f);
	watch = watch_start(f, "alice", "general", "--notify=off", NULL);
	post_and_settle(f, watch, "general", "alice: nothing special");
	client_stop(watch);
	g_assert_null(strstr(watch->err->text->str, "notifications are unavailable"));
}

/* a notification server: no warning */
static void
test_watch_server_no_warning(Fixture *f)
{
	g_autoptr(Client) watch = watch_start(f, "alice", "general", "--notify=all", NULL);

	post(f, "bob", "general", "first");
	expect_call(f, 0, "general", "bob", "first");
	post_and_settle(f, watch, "general", "second");
	client_stop(watch);
	g_assert_null(strstr(watch->err->text->str, "notifications are unavailable"));
}

/* chat says it once, as a status line among the messages */
static void
test_chat_no_server(Fixture *f)
{
	const gchar *const env[] = {"CODECHAT_NOTIFY=all", NULL};
	const gchar *const args[] = {"chat", "--room", "general", NULL};
	g_autoptr(Client) chat = NULL;
	GOutputStream *in;
	g_autoptr(GError) error = NULL;

	stop_server(f);
	chat = client_start(f, NULL, "alice", env, args);
	wait_member(f, "general", "alice", TRUE);
	post(f, "bob", "general", "first");
	post(f, "bob", "general", "second");
	post(f, "bob", "general", "third");
	g_assert_cmpuint(client_wait_output_counting(chat, "third", CHAT_UNAVAILABLE), ==, 1);
	in = g_subprocess_get_stdin_pipe(chat->proc);
	g_assert_true(g_output_stream_close(in, NULL, &error));
	g_assert_no_error(error);
	g_assert_cmpint(client_wait_exit(chat), ==, 0);
}

/* each case in a subprocess of its own: one private bus per process (a
 * second GTestDBus would inherit the first one's watcher pipe), and a
 * timeout on the whole case */
static void
run_case(gconstpointer user_data)
{
	void (*func)(Fixture * f) = (void (*)(Fixture *))user_data;
	Fixture f = {NULL};

	if (!g_test_subprocess()) {
		g_test_trap_subprocess(NULL, CASE_TIMEOUT_US, G_TEST_SUBPROCESS_INHERIT_STDERR);
		g_test_trap_assert_passed();
		return;
	}
	fixture_set_up(&f);
	func(&f);
	fixture_tear_down(&f);
}

#define ADD(name, func)                                                                            \
	g_test_add_data_func("/codechat/client-notify/" name, (gconstpointer)(func), run_case)

int
main(int argc, char **argv)
{
	/* a desktop's own display stays out of it; its bus too (meson.build
	 * empties DBUS_SESSION_BUS_ADDRESS, each case sets its own) */
	g_unsetenv("DISPLAY");
	g_test_init(&argc, &argv, NULL);
	if (!g_test_subprocess())
		g_test_set_nonfatal_assertions();

	ADD("watch-all", test_watch_all);
	ADD("watch-bare-mentions", test_watch_bare_mentions);
	ADD("watch-bare-setting-all", test_watch_bare_setting_all);
	ADD("watch-env-all", test_watch_env_all);
	ADD("watch-flag-beats-env", test_watch_flag_beats_env);
	ADD("watch-setting-all", test_watch_setting_all);
	ADD("watch-env-beats-setting", test_watch_env_beats_setting);
	ADD("chat-env-all", test_chat_env_all);
	ADD("watch-no-server", test_watch_no_server);
	ADD("watch-setting-no-server", test_watch_setting_no_server);
	ADD("watch-off-no-server", test_watch_off_no_server);
	ADD("watch-server-no-warning", test_watch_server_no_warning);
	ADD("chat-no-server", test_chat_no_server);
	return g_test_run();
}
