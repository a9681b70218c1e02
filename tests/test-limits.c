/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "codechat-protocol.h"
#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"

/*
 * The abuse limits of codechatd against a real daemon: connections per
 * address, the HTTP handshake timeout and the cap on connections that
 * have not finished it (slowloris), the outbound bound of slow readers,
 * and a flood of garbage frames.
 */

#define T CODECHAT_TEST_TIMEOUT_MS

#define CLOSE_TRY_AGAIN_LATER 1013

/* a daemon left running by a failed assertion would outlive the test */
static pid_t daemon_pid;

static void
abort_handler(int sig)
{
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

typedef struct {
	CodechatTestDaemon *daemon; /* (owned) */
	GPtrArray *clients;	    /* (owned) (element-type CodechatTestWs) */
	GPtrArray *raws;	    /* (owned) (element-type CodechatTestRaw) */
	GPtrArray *tcps;	    /* (owned) (element-type GSocketConnection) */
	pid_t pid;
} Fixture;

static void
fixture_setup(Fixture *fx, gconstpointer user_data)
{
	fx->daemon = codechat_test_daemon_start((const gchar *const *)user_data);
	fx->pid = (pid_t)atoi(g_subprocess_get_identifier(fx->daemon->proc));
	daemon_pid = fx->pid;
	fx->clients = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_ws_free);
	fx->raws = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_raw_free);
	fx->tcps = g_ptr_array_new_with_free_func(g_object_unref);
}

static void
fixture_teardown(Fixture *fx, gconstpointer user_data)
{
	g_ptr_array_set_size(fx->clients, 0);
	g_ptr_array_set_size(fx->raws, 0);
	g_ptr_array_set_size(fx->tcps, 0);
	g_assert_cmpint(codechat_test_daemon_stop(fx->daemon), ==, 0);
	daemon_pid = 0;
	g_clear_pointer(&fx->daemon, codechat_test_daemon_free);
	g_clear_pointer(&fx->clients, g_ptr_array_unref);
	g_clear_pointer(&fx->raws, g_ptr_array_unref);
	g_clear_pointer(&fx->tcps, g_ptr_array_unref);
}

static CodechatTestWs *
fx_client(Fixture *fx, const gchar *nick)
{
	CodechatTestWs *ws = codechat_test_ws_new_client(fx->daemon->uri, nick, NULL);
	g_ptr_array_add(fx->clients, ws);
	return ws;
}

static CodechatTestRaw *
fx_raw(Fixture *fx, const gchar *local_address, gint rcvbuf)
{
	CodechatTestRaw *raw =
	    codechat_test_raw_connect_full(fx->daemon->uri, local_address, rcvbuf);
	g_ptr_array_add(fx->raws, raw);
	return raw;
}

static GSocket *
fx_tcp(Fixture *fx)
{
	GSocketConnection *conn = codechat_test_tcp_connect(fx->daemon->uri, NULL, 0);
	g_ptr_array_add(fx->tcps, conn);
	return g_socket_connection_get_socket(conn);
}

static void
fx_join(CodechatTestWs *ws, const gchar *room)
{
	g_autoptr(JsonObject) joined = NULL;

	codechat_test_ws_sendf(ws, "{\"type\":\"join\",\"room\":\"%s\"}", room);
	joined = codechat_test_ws_expect(ws, "joined");
}

/* one say and its acknowledgement; returns the round trip in µs */
static gint64
say_round_trip(CodechatTestWs *ws, const gchar *room, const gchar *ref)
{
	gint64 start = g_get_monotonic_time();
	g_autoptr(JsonObject) ack = NULL;

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"room\":\"%s\",\"text\":\"hi\",\"ref\":\"%s\"}",
			       room,
			       ref);
	ack = codechat_test_ws_expect(ws, "message");
	g_assert_cmpstr(codechat_test_json_string(ack, "ref"), ==, ref);
	return g_get_monotonic_time() - start;
}

/* waits until the peer closes a plain TCP connection: TRUE on EOF or a
 * reset, FALSE if it is still open at the deadline */
static gboolean
tcp_wait_eof(GSocket *socket, gint64 deadline_us)
{
	gchar buf[4096];

	for (;;) {
		g_autoptr(GError) error = NULL;
		gint64 left = deadline_us - g_get_monotonic_time();
		gssize n;

		if (left <= 0)
			return FALSE;
		if (!g_socket_condition_timed_wait(socket, G_IO_IN, left, NULL, &error))
			return FALSE;
		n = g_socket_receive_with_blocking(socket, buf, sizeof buf, FALSE, NULL, &error);
		if (n == 0)
			return TRUE;
		if (n < 0 && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
			return TRUE;
	}
}

static gsize
daemon_rss_kib(Fixture *fx)
{
	g_autofree gchar *path = g_strdup_printf("/proc/%d/status", (int)fx->pid);
	g_autofree gchar *status = NULL;
	const gchar *line;

	g_assert_true(g_file_get_contents(path, &status, NULL, NULL));
	line = strstr(status, "VmRSS:");
	g_assert_nonnull(line);
	return (gsize)g_ascii_strtoull(line + strlen("VmRSS:"), NULL, 10);
}

/* per address */

static const gchar *const args_per_address[] = {"--max-connections-per-address", "3", NULL};

static void
test_per_address(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *first;
	CodechatTestRaw *over;
	CodechatTestRaw *other;
	CodechatTestWs *bob;
	g_autoptr(JsonObject) err = NULL;
	g_autoptr(JsonObject) welcome = NULL;
	gint64 deadline;
	gboolean again = FALSE;

	/* three from 127.0.0.1: the bound itself is allowed */
	first = fx_raw(fx, "127.0.0.1", 0);
	welcome = codechat_test_raw_hello(first, "first");
	g_clear_pointer(&welcome, json_object_unref);
	welcome = codechat_test_raw_hello(fx_raw(fx, "127.0.0.1", 0), "second");
	g_clear_pointer(&welcome, json_object_unref);
	bob = fx_client(fx, "bob");

	/* the fourth is refused like one past --max-connections */
	over = fx_raw(fx, "127.0.0.1", 0);
	err = codechat_test_raw_expect(over, "error");
	g_assert_cmpstr(codechat_test_json_string(err, "code"), ==, "overloaded");
	g_assert_cmpint(codechat_test_raw_wait_close(over, T), ==, CLOSE_TRY_AGAIN_LATER);

	/* another address is served meanwhile, and so are the first three */
	other = fx_raw(fx, "127.0.0.2", 0);
	welcome = codechat_test_raw_hello(other, "other");
	g_clear_pointer(&welcome, json_object_unref);
	fx_join(bob, "r");
	say_round_trip(bob, "r", "b1");

	/* a closed session frees its place: retry until the daemon has seen
	 * the close, within a deadline */
	g_ptr_array_remove(fx->raws, first);
	deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	while (!again && g_get_monotonic_time() < deadline) {
		CodechatTestRaw *next = fx_raw(fx, "127.0.0.1", 0);
		g_autoptr(JsonObject) reply = NULL;

		g_assert_true(
		    codechat_test_raw_send_text(next, "{\"type\":\"hello\",\"nick\":\"again\"}"));
		reply = codechat_test_raw_recv(next, T);
		g_assert_nonnull(reply);
		if (g_strcmp0(codechat_test_json_string(reply, "type"), "welcome") == 0)
			again = TRUE;
		else
			g_assert_cmpstr(codechat_test_json_string(reply, "code"), ==, "overloaded");
		if (!again)
			g_ptr_array_remove(fx->raws, next);
	}
	g_assert_true(again);
}

/* a bound of 0 is no bound */
static const gchar *const args_per_address_off[] = {"--max-connections-per-address", "0", NULL};

static void
test_per_address_off(Fixture *fx, gconstpointer user_data)
{
	for (guint i = 0; i < 80; i++) {
		g_autofree gchar *nick = g_strdup_printf("n%u", i);
		json_object_unref(codechat_test_raw_hello(fx_raw(fx, "127.0.0.1", 0), nick));
	}
}

/* the default: no bound on loopback, where every peer is this machine's
 * (a local reverse proxy, load tests) ... */
static void
test_per_address_default_loopback(Fixture *fx, gconstpointer user_data)
{
	test_per_address_off(fx, user_data);
}

/* ... and 64 beyond it */
static const gchar *const args_beyond_loopback[] = {"--listen",
						    "0.0.0.0:0",
						    "--allow-anonymous",
						    NULL};

static void
test_per_address_default_beyond(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *over;
	g_autoptr(JsonObject) err = NULL;

	for (guint i = 0; i < 64; i++) {
		g_autofree gchar *nick = g_strdup_printf("n%u", i);
		json_object_unref(codechat_test_raw_hello(fx_raw(fx, "127.0.0.1", 0), nick));
	}
	over = fx_raw(fx, "127.0.0.1", 0);
	err = codechat_test_raw_expect(over, "error");
	g_assert_cmpstr(codechat_test_json_string(err, "code"), ==, "overloaded");
	g_assert_cmpint(codechat_test_raw_wait_close(over, T), ==, CLOSE_TRY_AGAIN_LATER);
}

/* slowloris */

static const gchar *const args_handshake[] = {"--handshake-timeout", "2", NULL};

static void
test_slowloris(Fixture *fx, gconstpointer user_data)
{
	const gchar *half = "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
	GSocket *slow = fx_tcp(fx);
	GSocket *silent = fx_tcp(fx);
	gint64 start = g_get_monotonic_time();
	g_autoptr(GError) error = NULL;
	CodechatTestWs *alice;
	gint64 rtt;

	g_assert_cmpint(g_socket_send(slow, half, strlen(half), NULL, &error), ==, strlen(half));
	g_assert_no_error(error);

	/* meanwhile a normal client connects and chats without delay */
	alice = fx_client(fx, "alice");
	fx_join(alice, "r");
	rtt = say_round_trip(alice, "r", "a1");
	g_assert_cmpint(rtt, <, G_USEC_PER_SEC);
	g_assert_cmpint(g_get_monotonic_time() - start, <, 2 * G_USEC_PER_SEC);

	/* both stalled connections go at the timeout, not before */
	g_assert_true(tcp_wait_eof(slow, start + 8 * G_USEC_PER_SEC));
	g_assert_true(tcp_wait_eof(silent, start + 8 * G_USEC_PER_SEC));
	g_assert_cmpint(g_get_monotonic_time() - start, >=, 3 * G_USEC_PER_SEC / 2);
	/* and the chat goes on */
	say_round_trip(alice, "r", "a2");
}

static const gchar *const args_default[] = {NULL};

static void
test_idle_many(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice;
	gint64 start;

	for (guint i = 0; i < 200; i++)
		fx_tcp(fx);
	start = g_get_monotonic_time();
	alice = fx_client(fx, "alice");
	fx_join(alice, "r");
	for (guint i = 0; i < 10; i++) {
		g_autofree gchar *ref = g_strdup_printf("a%u", i);
		say_round_trip(alice, "r", ref);
	}
	/* under valgrind every round trip is many times slower */
	g_assert_cmpint(g_get_monotonic_time() - start,
			<,
			(g_getenv("CODECHAT_TEST_DAEMON_WRAPPER") != NULL ? 10 : 2) *
			    G_USEC_PER_SEC);
}

static const gchar *const args_max_handshakes[] = {"--max-handshakes",
						   "50",
						   "--handshake-timeout",
						   "60",
						   NULL};

static void
test_max_handshakes(Fixture *fx, gconstpointer user_data)
{
	GSocket *oldest = fx_tcp(fx);
	GSocket *newest = NULL;
	CodechatTestWs *alice;
	gint64 start;

	for (guint i = 0; i < 199; i++)
		newest = fx_tcp(fx);
	start = g_get_monotonic_time();
	/* past the cap the oldest go, long before their timeout */
	g_assert_true(tcp_wait_eof(oldest, start + 5 * G_USEC_PER_SEC));
	/* the newest stays */
	g_assert_false(tcp_wait_eof(newest, g_get_monotonic_time() + G_USEC_PER_SEC / 2));
	alice = fx_client(fx, "alice");
	fx_join(alice, "r");
	say_round_trip(alice, "r", "a1");
}

/* slow readers */

static const gchar *const args_no_rate[] = {"--rate-limit", "0", NULL};

static void
test_slow_reader(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *slow = fx_raw(fx, NULL, 4096);
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *alice = fx_client(fx, "alice");
	g_autoptr(JsonObject) obj = NULL;
	guint bob_got = 0;
	gint64 bob_last = 0;
	g_autoptr(GString) text = g_string_new(NULL);
	gsize rss_before, rss_max = 0;
	gint64 max_batch_us = 0;
	guint64 sent_bytes = 0;
	guint sent = 0;
	gboolean quit = FALSE;

	obj = codechat_test_raw_hello(slow, "slow");
	g_clear_pointer(&obj, json_object_unref);
	g_assert_true(codechat_test_raw_send_text(slow, "{\"type\":\"join\",\"room\":\"r\"}"));
	obj = codechat_test_raw_expect(slow, "joined");
	g_clear_pointer(&obj, json_object_unref);
	/* bob right behind slow in the room: when slow leaves in the middle
	 * of a broadcast, bob must not be skipped */
	fx_join(bob, "r");
	fx_join(alice, "r");
	obj = codechat_test_ws_expect(bob, "presence");
	g_clear_pointer(&obj, json_object_unref);
	for (guint i = 0; i < 8000; i++)
		g_string_append_c(text, 'a' + i % 26);
	rss_before = daemon_rss_kib(fx);

	/* slow never reads again; alice floods the room in batches, each
	 * acknowledged before the next, until slow is gone (bounded) */
	while (!quit && sent_bytes < 64 * 1024 * 1024) {
		gint64 start = g_get_monotonic_time();
		guint acked = 0;

		for (guint i = 0; i < 50; i++) {
			codechat_test_ws_sendf(
			    alice,
			    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"%s\",\"ref\":\"m%u\"}",
			    text->str,
			    sent++);
			sent_bytes += text->len;
		}
		while (acked < 50) {
			g_autoptr(JsonObject) reply = codechat_test_ws_recv(alice, T);
			const gchar *type;

			g_assert_nonnull(reply);
			type = codechat_test_json_string(reply, "type");
			if (g_strcmp0(type, "message") == 0) {
				acked++;
			} else if (g_strcmp0(type, "presence") == 0) {
				g_assert_cmpstr(codechat_test_json_string(reply, "nick"),
						==,
						"slow");
				g_assert_cmpstr(codechat_test_json_string(reply, "event"),
						==,
						"quit");
				quit = TRUE;
			} else {
				g_error("unexpected reply %s", type);
			}
		}
		max_batch_us = MAX(max_batch_us, g_get_monotonic_time() - start);
		rss_max = MAX(rss_max, daemon_rss_kib(fx));
	}
	codechat_test_note("slow reader: %u messages (%" G_GUINT64_FORMAT
			   " bytes) until it was closed; daemon RSS %zu KiB before, at most %zu "
			   "KiB; slowest batch of 50 acknowledged in %" G_GINT64_FORMAT " ms",
			   sent,
			   sent_bytes,
			   rss_before,
			   rss_max,
			   max_batch_us / 1000);
	g_assert_true(quit);
	/* bob, who reads, got every message, in order, and slow's quit */
	while (bob_got < sent) {
		g_autoptr(JsonObject) m = codechat_test_ws_recv(bob, T);
		const gchar *type;

		g_assert_nonnull(m);
		type = codechat_test_json_string(m, "type");
		if (g_strcmp0(type, "presence") == 0)
			continue;
		g_assert_cmpstr(type, ==, "message");
		if (bob_last != 0)
			g_assert_cmpint(json_object_get_int_member(m, "id"), ==, bob_last + 1);
		bob_last = json_object_get_int_member(m, "id");
		bob_got++;
	}
	g_assert_cmpuint(rss_max, <, rss_before + 64 * 1024);
	g_assert_cmpint(max_batch_us, <, 3 * G_USEC_PER_SEC);

	/* gone from the room; the daemon goes on serving alice and bob */
	codechat_test_ws_sendf(alice, "{\"type\":\"who\",\"room\":\"r\"}");
	obj = codechat_test_ws_expect(alice, "members");
	{
		JsonArray *members = json_object_get_array_member(obj, "members");
		g_assert_cmpuint(json_array_get_length(members), ==, 2);
	}
	say_round_trip(alice, "r", "after");

	/* a reader that is slow but alive finds 1013 after the frames that
	 * went out whole, and nothing torn */
	g_assert_cmpint(codechat_test_raw_wait_close(slow, T), ==, CLOSE_TRY_AGAIN_LATER);
}

/*
 * Output is written at the end of a main loop iteration, and one store
 * batch can be broadcast in one go: a reader that keeps up must not be
 * taken for a slow one because a burst passed the bound before anything
 * was written.
 */
static const gchar *const args_small_outbound[] = {"--rate-limit",
						   "0",
						   "--max-outbound-bytes",
						   "16384",
						   NULL};

static void
test_burst_fast_reader(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *alice = fx_client(fx, "alice");
	g_autoptr(GString) text = g_string_new(NULL);
	guint acked = 0, got = 0;
	const guint n = 200;

	fx_join(bob, "r");
	fx_join(alice, "r");
	{
		g_autoptr(JsonObject) presence = codechat_test_ws_expect(bob, "presence");
		(void)presence;
	}
	for (guint i = 0; i < 4000; i++)
		g_string_append_c(text, 'a' + i % 26);
	/* 200 says of 4 KB, all at once: store batches of many of them */
	for (guint i = 0; i < n; i++)
		codechat_test_ws_sendf(alice,
				       "{\"type\":\"say\",\"room\":\"r\",\"text\":\"%s\","
				       "\"ref\":\"m%u\"}",
				       text->str,
				       i);
	while (acked < n) {
		g_autoptr(JsonObject) m = codechat_test_ws_recv(alice, T);
		g_assert_nonnull(m);
		if (g_strcmp0(codechat_test_json_string(m, "type"), "message") == 0)
			acked++;
	}
	while (got < n) {
		g_autoptr(JsonObject) m = codechat_test_ws_recv(bob, T);
		g_assert_nonnull(m);
		g_assert_cmpstr(codechat_test_json_string(m, "type"), ==, "message");
		got++;
	}
	g_assert_true(codechat_test_ws_is_open(bob));
	say_round_trip(alice, "r", "after");
}

/* garbage */

static void
test_garbage_flood(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *raw = fx_raw(fx, NULL, 0);
	CodechatTestWs *alice = fx_client(fx, "alice");
	guint errors = 0;

	fx_join(alice, "r");
	for (guint i = 0; i < 2000; i++) {
		if (!codechat_test_raw_send_text(raw, i % 2 == 0 ? "{" : "not json"))
			break;
	}
	/* the daemon answers each (bad JSON may be retried before hello) or
	 * closes; it never stalls */
	for (;;) {
		g_autoptr(JsonObject) reply = codechat_test_raw_recv(raw, T);
		if (reply == NULL)
			break;
		g_assert_cmpstr(codechat_test_json_string(reply, "type"), ==, "error");
		if (++errors == 2000)
			break;
	}
	codechat_test_note("garbage: %u errors", errors);
	g_assert_cmpuint(errors, >, 0);
	say_round_trip(alice, "r", "a1");
	json_object_unref(codechat_test_raw_hello(raw, "garbage"));
}

/* settings: keys of the config file, and what --help and bad values say */

static void
test_config_keys(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp("codechat-limits-XXXXXX", &error);
	g_autofree gchar *path = NULL;
	g_autoptr(CodechatTestDaemon) daemon = NULL;
	g_autoptr(CodechatTestRaw) first = NULL;
	g_autoptr(CodechatTestRaw) second = NULL;
	g_autoptr(JsonObject) err = NULL;
	g_autoptr(GSocketConnection) idle = NULL;
	gint64 start;

	g_assert_no_error(error);
	path = g_build_filename(dir, "codechatd.conf", NULL);
	g_assert_true(g_file_set_contents(path,
					  "[daemon]\n"
					  "max-connections-per-address=1\n"
					  "handshake-timeout=1\n"
					  "max-handshakes=100\n"
					  "max-outbound-bytes=65536\n",
					  -1,
					  &error));
	g_assert_no_error(error);
	{
		const gchar *args[] = {"--config", path, NULL};
		daemon = codechat_test_daemon_start(args);
	}
	daemon_pid = (pid_t)atoi(g_subprocess_get_identifier(daemon->proc));

	first = codechat_test_raw_connect_full(daemon->uri, "127.0.0.1", 0);
	json_object_unref(codechat_test_raw_hello(first, "first"));
	second = codechat_test_raw_connect_full(daemon->uri, "127.0.0.1", 0);
	err = codechat_test_raw_expect(second, "error");
	g_assert_cmpstr(codechat_test_json_string(err, "code"), ==, "overloaded");

	idle = codechat_test_tcp_connect(daemon->uri, NULL, 0);
	start = g_get_monotonic_time();
	g_assert_true(
	    tcp_wait_eof(g_socket_connection_get_socket(idle), start + 5 * G_USEC_PER_SEC));

	g_clear_pointer(&first, codechat_test_raw_free);
	g_clear_pointer(&second, codechat_test_raw_free);
	g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
	daemon_pid = 0;
	codechat_test_rm_rf(dir);
}

static void
test_options(void)
{
	const gchar *bad[] = {"--max-connections-per-address",
			      "--handshake-timeout",
			      "--max-handshakes",
			      "--max-outbound-bytes"};
	g_autoptr(GError) error = NULL;
	g_autofree gchar *out = NULL;
	/* no config file of the machine's */
	g_auto(GStrv) envp =
	    g_environ_setenv(g_get_environ(), "XDG_CONFIG_HOME", "/nonexistent", TRUE);
	gint status = 0;

	{
		const gchar *argv[] = {codechat_test_daemon_path(), "--help", NULL};
		g_assert_true(g_spawn_sync(NULL,
					   (gchar **)argv,
					   envp,
					   G_SPAWN_STDERR_TO_DEV_NULL,
					   NULL,
					   NULL,
					   &out,
					   NULL,
					   &status,
					   &error));
		g_assert_no_error(error);
		g_assert_cmpint(status, ==, 0);
		for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
			g_assert_nonnull(strstr(out, bad[i]));
	}
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		const gchar *argv[] =
		    {codechat_test_daemon_path(), "--listen", "127.0.0.1:0", bad[i], "-1", NULL};
		g_autofree gchar *err_out = NULL;

		g_assert_true(g_spawn_sync(NULL,
					   (gchar **)argv,
					   envp,
					   G_SPAWN_DEFAULT,
					   NULL,
					   NULL,
					   NULL,
					   &err_out,
					   &status,
					   &error));
		g_assert_no_error(error);
		g_assert_false(g_spawn_check_wait_status(status, NULL));
		g_assert_nonnull(strstr(err_out, bad[i]));
	}
}

int
main(int argc, char **argv)
{
	signal(SIGABRT, abort_handler);
	signal(SIGPIPE, SIG_IGN);
	g_test_init(&argc, &argv, NULL);
	/* ASan keeps freed memory in quarantine (256 MiB by default), which
	 * the RSS of a daemon flooded with messages would measure instead of
	 * its own buffers: keep the quarantine small for our daemons */
	if (g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS") != NULL) {
		g_autofree gchar *options =
		    g_strconcat(g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS"),
				":quarantine_size_mb=16",
				NULL);
		g_setenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS", options, TRUE);
	}

#define ADD(path, args, func)                                                                      \
	g_test_add("/limits/" path, Fixture, args, fixture_setup, func, fixture_teardown)

	ADD("per-address/bound", args_per_address, test_per_address);
	ADD("per-address/off", args_per_address_off, test_per_address_off);
	ADD("per-address/default-loopback", args_default, test_per_address_default_loopback);
	ADD("per-address/default-beyond-loopback",
	    args_beyond_loopback,
	    test_per_address_default_beyond);
	ADD("handshake/slowloris", args_handshake, test_slowloris);
	ADD("handshake/idle-many", args_default, test_idle_many);
	ADD("handshake/max-pending", args_max_handshakes, test_max_handshakes);
	ADD("outbound/slow-reader", args_no_rate, test_slow_reader);
	ADD("outbound/burst-fast-reader", args_small_outbound, test_burst_fast_reader);
	ADD("garbage/flood", args_no_rate, test_garbage_flood);
	g_test_add_func("/limits/settings/config-keys", test_config_keys);
	g_test_add_func("/limits/settings/options", test_options);

	return g_test_run();
}
