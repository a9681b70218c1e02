/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <libnotify/notify.h>
#include <string.h>

#include "codechat-notify.h"
#include "codechat-test-client.h"
#include "codechat-test-notifications.h"

/*
 * Unit tests of the desktop notifier against a recording fake of
 * org.freedesktop.Notifications (a service outside the project, see
 * codechat-test-notifications.h) on a private session bus (GTestDBus).
 */

#define WAIT_MS	    5000 /* longest wait for a call that should come */
#define WINDOW_MS   200	 /* coalescing window in the tests */
#define UNAVAILABLE "desktop notifications unavailable"

typedef CodechatTestNotifyCall NotifyCall;
typedef CodechatTestNotifications FakeServer;

#define fake_server_start codechat_test_notifications_start
#define fake_server_stop  codechat_test_notifications_stop
#define fake_n_calls	  codechat_test_notifications_n_calls
#define fake_call	  codechat_test_notifications_call
#define wait_for_calls	  codechat_test_notifications_wait
#define hint_string	  codechat_test_notify_hint_string

static gboolean
timeout_cb(gpointer user_data)
{
	gboolean *expired = user_data;

	*expired = TRUE;
	return G_SOURCE_REMOVE;
}

/* runs the main context for @ms */
static void
spin(guint ms)
{
	gboolean expired = FALSE;

	g_timeout_add(ms, timeout_cb, &expired);
	while (!expired)
		g_main_context_iteration(NULL, TRUE);
}

/* counts "desktop notifications unavailable" debug lines, from any thread */
static gint n_unavailable;

static GLogWriterOutput
writer_cb(GLogLevelFlags log_level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
	if (log_level & G_LOG_LEVEL_DEBUG) {
		for (gsize i = 0; i < n_fields; i++) {
			if (g_strcmp0(fields[i].key, "MESSAGE") == 0 && fields[i].length < 0 &&
			    g_str_has_prefix(fields[i].value, UNAVAILABLE))
				g_atomic_int_inc(&n_unavailable);
		}
	}
	return g_log_writer_default(log_level, fields, n_fields, user_data);
}

static CodechatMessage *
message_new(const gchar *room, const gchar *to, const gchar *from, const gchar *text)
{
	static guint64 next_id = 1;
	CodechatMessage *msg = codechat_message_new();

	msg->room = g_strdup(room);
	msg->to = g_strdup(to);
	msg->from = g_strdup(from);
	msg->text = g_strdup(text);
	msg->id = next_id++;
	msg->ts = g_get_real_time();
	return msg;
}

static void
handle(CodechatNotifier *notifier,
       const gchar *room,
       const gchar *to,
       const gchar *from,
       const gchar *text)
{
	g_autoptr(CodechatMessage) msg = message_new(room, to, from, text);

	codechat_notifier_handle(notifier, msg);
}

/* fixture: a private session bus with the fake on it */

typedef struct {
	GTestDBus *bus;		    /* (owned) (nullable) */
	FakeServer *fake;	    /* (owned) (nullable) */
	CodechatNotifier *notifier; /* (owned) (nullable) */
} Fixture;

typedef struct {
	gboolean fake;
	gboolean markup;
	gboolean fail;
} FixtureData;

static const FixtureData with_fake = {TRUE, FALSE, FALSE};
static const FixtureData with_markup = {TRUE, TRUE, FALSE};
static const FixtureData with_failing = {TRUE, FALSE, TRUE};
static const FixtureData without_fake = {FALSE, FALSE, FALSE};

static void
fixture_set_up(Fixture *fx, gconstpointer user_data)
{
	const FixtureData *data = user_data;

	g_atomic_int_set(&n_unavailable, 0);
	fx->bus = g_test_dbus_new(G_TEST_DBUS_NONE);
	codechat_test_dbus_up(fx->bus);
	if (data->fake)
		fx->fake = fake_server_start(fx->bus, data->markup, data->fail);
}

static void
fixture_tear_down(Fixture *fx, gconstpointer user_data)
{
	/* the notifier's notifications, then libnotify's proxy: both hold the
	 * session bus connection that g_test_dbus_down() waits for */
	g_clear_object(&fx->notifier);
	notify_uninit();
	g_clear_pointer(&fx->fake, fake_server_stop);
	if (fx->bus != NULL)
		g_test_dbus_down(fx->bus);
	g_clear_object(&fx->bus);
}

static CodechatNotifier *
fixture_notifier(Fixture *fx, CodechatNotifyMode mode, const gchar *nick, guint window_ms)
{
	fx->notifier = codechat_notifier_new(mode, nick);
	codechat_notifier_set_window_ms(fx->notifier, window_ms);
	return fx->notifier;
}

/* the cases */

static void
test_mode_strings(void)
{
	CodechatNotifyMode mode = CODECHAT_NOTIFY_OFF;

	g_assert_cmpstr(codechat_notify_mode_to_string(CODECHAT_NOTIFY_OFF), ==, "off");
	g_assert_cmpstr(codechat_notify_mode_to_string(CODECHAT_NOTIFY_MENTIONS), ==, "mentions");
	g_assert_cmpstr(codechat_notify_mode_to_string(CODECHAT_NOTIFY_ALL), ==, "all");
	g_assert_true(codechat_notify_mode_from_string("all", &mode));
	g_assert_cmpint(mode, ==, CODECHAT_NOTIFY_ALL);
	g_assert_true(codechat_notify_mode_from_string("Mentions", &mode));
	g_assert_cmpint(mode, ==, CODECHAT_NOTIFY_MENTIONS);
	g_assert_true(codechat_notify_mode_from_string("off", &mode));
	g_assert_cmpint(mode, ==, CODECHAT_NOTIFY_OFF);
	mode = CODECHAT_NOTIFY_ALL;
	g_assert_false(codechat_notify_mode_from_string("some", &mode));
	g_assert_false(codechat_notify_mode_from_string("", &mode));
	g_assert_false(codechat_notify_mode_from_string(NULL, &mode));
	g_assert_cmpint(mode, ==, CODECHAT_NOTIFY_ALL);
}

static void
test_mention_words(void)
{
	const struct {
		const gchar *text;
		gboolean mention;
	} cases[] = {
	    {"alice", TRUE},	   {"hi alice", TRUE},
	    {"ALICE: look", TRUE}, {"@Alice, look", TRUE},
	    {"(alice)", TRUE},	   {"alice's patch", TRUE},
	    {"ping alice-", TRUE}, {"ping alice.", TRUE},
	    {"ask «alice»", TRUE}, {"malice", FALSE},
	    {"alices", FALSE},	   {"alice2", FALSE},
	    {"alice_bot", FALSE},  {"alice-bot", FALSE},
	    {"bob-alice", FALSE},  {"éalice", FALSE},
	    {"aliceé", FALSE},	   {"alic", FALSE},
	    {"", FALSE},	   {"malice then alice", TRUE},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_test_message("%s", cases[i].text);
		g_assert_cmpint(codechat_notify_is_mention(cases[i].text, "alice"),
				==,
				cases[i].mention);
	}
	g_assert_false(codechat_notify_is_mention("alice", NULL));
	g_assert_false(codechat_notify_is_mention(NULL, "alice"));
}

static void
test_shorten(void)
{
	g_autoptr(GString) long_text = g_string_new(NULL);
	g_autofree gchar *short_text = codechat_notify_shorten("short", 200);
	g_autofree gchar *cut = NULL;
	g_autofree gchar *cut_utf8 = NULL;
	g_autofree gchar *fixed = NULL;
	g_autofree gchar *exact = NULL;

	g_assert_cmpstr(short_text, ==, "short");
	for (guint i = 0; i < 300; i++)
		g_string_append(long_text, "é");
	cut_utf8 = codechat_notify_shorten(long_text->str, 200);
	g_assert_true(g_utf8_validate(cut_utf8, -1, NULL));
	g_assert_cmpint(g_utf8_strlen(cut_utf8, -1), ==, 200);
	g_assert_true(g_str_has_suffix(cut_utf8, "é…"));

	g_string_truncate(long_text, 0);
	for (guint i = 0; i < 200; i++)
		g_string_append_c(long_text, 'x');
	exact = codechat_notify_shorten(long_text->str, 200);
	g_assert_cmpstr(exact, ==, long_text->str);
	g_string_append_c(long_text, 'y');
	cut = codechat_notify_shorten(long_text->str, 200);
	g_assert_cmpint(g_utf8_strlen(cut, -1), ==, 200);
	g_assert_true(g_str_has_suffix(cut, "x…"));

	fixed = codechat_notify_shorten("bad \xff byte", 200);
	g_assert_true(g_utf8_validate(fixed, -1, NULL));
}

static void
test_off(Fixture *fx, gconstpointer user_data)
{
	CodechatNotifier *notifier = fixture_notifier(fx, CODECHAT_NOTIFY_OFF, "alice", 0);

	handle(notifier, "general", NULL, "bob", "alice: look");
	handle(notifier, NULL, "alice", "bob", "psst");
	g_assert_false(notify_is_initted());
	spin(50);
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 0);
}

static void
test_mentions(Fixture *fx, gconstpointer user_data)
{
	CodechatNotifier *notifier = fixture_notifier(fx, CODECHAT_NOTIFY_MENTIONS, "alice", 0);

	handle(notifier, "general", NULL, "bob", "hello all");
	handle(notifier, "general", NULL, "bob", "malice and alices");
	g_assert_false(notify_is_initted()); /* lazily, on the first notification */
	handle(notifier, "general", NULL, "bob", "hey ALICE, review?");
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 1);
	g_assert_cmpstr(fake_call(fx->fake, 0)->body, ==, "hey ALICE, review?");
	/* own messages, mentioning or not, room or direct */
	handle(notifier, "general", NULL, "Alice", "alice here");
	handle(notifier, NULL, "bob", "alice", "hi bob");
	/* direct messages to us are mentions; between others they are none */
	handle(notifier, NULL, "ALICE", "bob", "psst");
	handle(notifier, NULL, "carol", "bob", "psst alice");
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 2);
	g_assert_cmpstr(fake_call(fx->fake, 1)->summary, ==, "bob (direct)");
	g_assert_cmpstr(fake_call(fx->fake, 1)->body, ==, "psst");
	spin(50);
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 2);
}

static void
test_all(Fixture *fx, gconstpointer user_data)
{
	CodechatNotifier *notifier = fixture_notifier(fx, CODECHAT_NOTIFY_ALL, "alice", 0);

	handle(notifier, "general", NULL, "bob", "one");
	handle(notifier, "random", NULL, "carol", "two");
	handle(notifier, "general", NULL, "ALICE", "own");
	handle(notifier, NULL, "alice", "bob", "three");
	handle(notifier, NULL, "carol", "bob", "not ours");
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 3);
	g_assert_cmpstr(fake_call(fx->fake, 0)->body, ==, "one");
	g_assert_cmpstr(fake_call(fx->fake, 1)->body, ==, "two");
	g_assert_cmpstr(fake_call(fx->fake, 2)->body, ==, "three");
	for (guint i = 0; i < 3; i++)
		g_assert_cmpuint(fake_call(fx->fake, i)->replaces_id, ==, 0);
}

static void
test_content(Fixture *fx, gconstpointer user_data)
{
	CodechatNotifier *notifier = fixture_notifier(fx, CODECHAT_NOTIFY_ALL, "alice", 0);
	g_autoptr(GString) text = g_string_new(NULL);
	NotifyCall *call;

	handle(notifier, "general", NULL, "bob", "a < b && c > d");
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 1);
	call = fake_call(fx->fake, 0);
	g_assert_cmpstr(call->app_name, ==, "io.github.codechat.Codechat");
	g_assert_cmpstr(call->summary, ==, "#general: bob");
	/* no body-markup: the text as it is */
	g_assert_cmpstr(call->body, ==, "a < b && c > d");
	g_assert_cmpstr(hint_string(call->hints, "desktop-entry"),
			==,
			"io.github.codechat.Codechat");
	g_assert_cmpstr(hint_string(call->hints, "category"), ==, "im.received");

	for (guint i = 0; i < 150; i++)
		g_string_append(text, "ü ");
	handle(notifier, "random", NULL, "bob", text->str);
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 2);
	call = fake_call(fx->fake, 1);
	g_assert_cmpint(g_utf8_strlen(call->body, -1), ==, CODECHAT_NOTIFY_MAX_BODY);
	g_assert_true(g_str_has_suffix(call->body, "…"));
	g_assert_true(g_str_has_prefix(call->body, "ü ü "));
}

static void
test_markup(Fixture *fx, gconstpointer user_data)
{
	CodechatNotifier *notifier = fixture_notifier(fx, CODECHAT_NOTIFY_ALL, "alice", 0);

	handle(notifier, "general", NULL, "bob", "<b>a</b> & c");
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 1);
	g_assert_cmpstr(fake_call(fx->fake, 0)->body, ==, "&lt;b&gt;a&lt;/b&gt; &amp; c");
}

static void
test_coalesce(Fixture *fx, gconstpointer user_data)
{
	CodechatNotifier *notifier = fixture_notifier(fx, CODECHAT_NOTIFY_ALL, "alice", WINDOW_MS);
	NotifyCall *first, *random, *update;
	gint64 start = g_get_monotonic_time();

	for (guint i = 0; i < 5; i++) {
		g_autofree gchar *text = g_strdup_printf("message %u", i);
		handle(notifier, "general", NULL, i % 2 ? "bob" : "carol", text);
	}
	handle(notifier, "random", NULL, "bob", "elsewhere");
	for (guint i = 0; i < 3; i++)
		handle(notifier, NULL, "alice", "dave", "psst");
	/* a new notification for each room and for the sender of DMs, at once */
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 3);
	first = fake_call(fx->fake, 0);
	random = fake_call(fx->fake, 1);
	g_assert_cmpstr(first->summary, ==, "#general: carol");
	g_assert_cmpstr(first->body, ==, "message 0");
	g_assert_cmpuint(first->replaces_id, ==, 0);
	g_assert_cmpstr(random->summary, ==, "#random: bob");
	g_assert_cmpuint(random->replaces_id, ==, 0);
	g_assert_cmpuint(random->id, !=, first->id);
	g_assert_cmpstr(fake_call(fx->fake, 2)->summary, ==, "dave (direct)");

	/* then, when the window ends, one update of each in place */
	g_assert_cmpuint(wait_for_calls(fx->fake, 5, WAIT_MS), ==, 5);
	g_assert_cmpint(g_get_monotonic_time() - start, >=, (WINDOW_MS - 20) * 1000);
	for (guint i = 3; i < 5; i++) {
		update = fake_call(fx->fake, i);
		if (update->replaces_id == first->id) {
			g_assert_cmpstr(update->body, ==, "5 new messages in #general");
			g_assert_cmpstr(update->summary, ==, "#general: carol");
			g_assert_cmpstr(hint_string(update->hints, "category"), ==, "im.received");
		} else {
			g_assert_cmpuint(update->replaces_id, ==, fake_call(fx->fake, 2)->id);
			g_assert_cmpstr(update->body, ==, "3 new messages from dave");
		}
	}
	g_assert_cmpuint(fake_call(fx->fake, 3)->replaces_id,
			 !=,
			 fake_call(fx->fake, 4)->replaces_id);

	/* #random had one message: nothing more, ever */
	spin(2 * WINDOW_MS);
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 5);

	/* after a quiet window, a new notification */
	handle(notifier, "general", NULL, "bob", "later");
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 6);
	g_assert_cmpuint(fake_call(fx->fake, 5)->replaces_id, ==, 0);
	g_assert_cmpstr(fake_call(fx->fake, 5)->body, ==, "later");
}

static void
test_flood(Fixture *fx, gconstpointer user_data)
{
	CodechatNotifier *notifier = fixture_notifier(fx, CODECHAT_NOTIFY_ALL, "alice", WINDOW_MS);
	gint64 end = g_get_monotonic_time() + 3 * WINDOW_MS * 1000;
	guint sent = 0;
	guint n;

	/* a steady stream for three windows: about one call per window */
	while (g_get_monotonic_time() < end) {
		handle(notifier, "general", NULL, "bob", "spam");
		sent++;
		g_main_context_iteration(NULL, FALSE);
		g_usleep(2000);
	}
	spin(2 * WINDOW_MS);
	n = fake_n_calls(fx->fake);
	g_test_message("%u messages, %u calls", sent, n);
	g_assert_cmpuint(sent, >, 50);
	g_assert_cmpuint(n, >=, 2);
	g_assert_cmpuint(n, <=, 5);
	for (guint i = 1; i < n; i++)
		g_assert_cmpuint(fake_call(fx->fake, i)->replaces_id,
				 ==,
				 fake_call(fx->fake, 0)->id);
}

static void
test_no_server(Fixture *fx, gconstpointer user_data)
{
	CodechatNotifier *notifier = fixture_notifier(fx, CODECHAT_NOTIFY_ALL, "alice", 0);

	handle(notifier, "general", NULL, "bob", "one");
	handle(notifier, "random", NULL, "bob", "two");
	handle(notifier, NULL, "alice", "bob", "three");
	g_assert_cmpint(g_atomic_int_get(&n_unavailable), ==, 1);
}

static void
test_server_error(Fixture *fx, gconstpointer user_data)
{
	CodechatNotifier *notifier = fixture_notifier(fx, CODECHAT_NOTIFY_ALL, "alice", WINDOW_MS);

	handle(notifier, "general", NULL, "bob", "one");
	handle(notifier, "general", NULL, "bob", "two");
	handle(notifier, "random", NULL, "bob", "three");
	spin(2 * WINDOW_MS);
	g_assert_cmpuint(fake_n_calls(fx->fake), ==, 0);
	g_assert_cmpint(g_atomic_int_get(&n_unavailable), ==, 1);
}

static void
test_no_bus(void)
{
	g_autoptr(CodechatNotifier) notifier = NULL;

	g_atomic_int_set(&n_unavailable, 0);
	g_setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/codechat-test/bus", TRUE);
	notifier = codechat_notifier_new(CODECHAT_NOTIFY_ALL, "alice");
	codechat_notifier_set_window_ms(notifier, 0);
	handle(notifier, "general", NULL, "bob", "one");
	handle(notifier, "random", NULL, "bob", "two");
	g_assert_cmpint(g_atomic_int_get(&n_unavailable), ==, 1);
	g_clear_object(&notifier);
	notify_uninit();
	g_unsetenv("DBUS_SESSION_BUS_ADDRESS");
}

/* each case with a bus runs in a subprocess of its own: libnotify keeps
 * its proxy per process, GTestDBus leaks its watcher's pipe into every
 * dbus-daemon after the first (so a crash would leave one running), and
 * the timeout bounds a case that hangs in a synchronous D-Bus call */
#define CASE_TIMEOUT_US (20 * G_USEC_PER_SEC)

typedef struct {
	const FixtureData *data;
	void (*func)(Fixture *fx, gconstpointer user_data);
} BusCase;

static void
run_bus_case(gconstpointer user_data)
{
	const BusCase *bc = user_data;
	Fixture fx = {NULL};

	if (!g_test_subprocess()) {
		g_test_trap_subprocess(NULL, CASE_TIMEOUT_US, G_TEST_SUBPROCESS_INHERIT_STDERR);
		g_test_trap_assert_passed();
		return;
	}
	fixture_set_up(&fx, bc->data);
	bc->func(&fx, bc->data);
	fixture_tear_down(&fx, bc->data);
}

static void
run_in_subprocess(gconstpointer user_data)
{
	void (*func)(void) = (void (*)(void))user_data;

	if (!g_test_subprocess()) {
		g_test_trap_subprocess(NULL, CASE_TIMEOUT_US, G_TEST_SUBPROCESS_INHERIT_STDERR);
		g_test_trap_assert_passed();
		return;
	}
	func();
}

#define ADD(name, fixture_data, case_func)                                                         \
	G_STMT_START                                                                               \
	{                                                                                          \
		static const BusCase bc = {&(fixture_data), case_func};                            \
		g_test_add_data_func("/codechat/notify/" name, &bc, run_bus_case);                 \
	}                                                                                          \
	G_STMT_END

int
main(int argc, char **argv)
{
	/* a desktop's own bus and server stay out of it; no portal either */
	g_unsetenv("DBUS_SESSION_BUS_ADDRESS");
	g_unsetenv("DISPLAY");
	g_setenv("NOTIFY_IGNORE_PORTAL", "1", TRUE);
	g_log_set_writer_func(writer_cb, NULL, NULL);
	g_test_init(&argc, &argv, NULL);
	/* one broken case does not hide the others; within a case's
	 * subprocess, the first failure ends it */
	if (!g_test_subprocess())
		g_test_set_nonfatal_assertions();

	g_test_add_func("/codechat/notify/mode-strings", test_mode_strings);
	g_test_add_func("/codechat/notify/mention-words", test_mention_words);
	g_test_add_func("/codechat/notify/shorten", test_shorten);
	ADD("off", with_fake, test_off);
	ADD("mentions", with_fake, test_mentions);
	ADD("all", with_fake, test_all);
	ADD("content", with_fake, test_content);
	ADD("markup", with_markup, test_markup);
	ADD("coalesce", with_fake, test_coalesce);
	ADD("flood", with_fake, test_flood);
	ADD("no-server", without_fake, test_no_server);
	ADD("server-error", with_failing, test_server_error);
	g_test_add_data_func("/codechat/notify/no-bus",
			     (gconstpointer)test_no_bus,
			     run_in_subprocess);
	return g_test_run();
}
