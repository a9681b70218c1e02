/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <glib/gstdio.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "codechat-cluster.h"
#include "codechat-error.h"

/*
 * CodechatCluster against a real redis-server, which each case starts on a
 * unix socket in a directory of its own.  Several CodechatCluster in this
 * one process, on one main loop, stand for several daemons.
 */

#define REDIS_SERVER "/usr/bin/redis-server"
#define WAIT_MS	     10000

typedef struct {
	gchar *dir;	    /* (owned) */
	gchar *socket;	    /* (owned) */
	gchar *url;	    /* (owned) */
	GSubprocess *redis; /* (owned) (nullable) */
	guint port;	    /* a TCP port too, for cases that ask (data != NULL) */
} Fixture;

/* what one cluster told with ::presence, as "room/nick/event" */
typedef struct {
	CodechatCluster *cluster; /* (owned) */
	GPtrArray *events;	  /* (owned) (element-type utf8) */
} Daemon;

/* ------------------------------------------------------------------ */

typedef gboolean (*CondFunc)(gpointer data);

static gboolean
wake_cb(gpointer data)
{
	return G_SOURCE_CONTINUE;
}

/* runs the main loop until cond holds or ms passed */
static gboolean
wait_for(CondFunc cond, gpointer data, guint ms)
{
	gint64 deadline = g_get_monotonic_time() + ms * G_TIME_SPAN_MILLISECOND;
	guint wake = g_timeout_add(10, wake_cb, NULL);
	gboolean ok;

	while (!(ok = cond(data)) && g_get_monotonic_time() < deadline)
		g_main_context_iteration(NULL, TRUE);
	g_source_remove(wake);
	return ok;
}

static gboolean
never_cb(gpointer data)
{
	return FALSE;
}

/* runs the main loop for ms */
static void
spin(guint ms)
{
	wait_for(never_cb, NULL, ms);
}

static gboolean
redis_answers(const gchar *socket)
{
	struct timeval tv = {0, 200000};
	redisContext *c = redisConnectUnixWithTimeout(socket, tv);
	gboolean ok = FALSE;

	if (c != NULL && c->err == 0) {
		redisReply *reply = redisCommand(c, "PING");
		ok = reply != NULL && reply->type == REDIS_REPLY_STATUS;
		if (reply != NULL)
			freeReplyObject(reply);
	}
	if (c != NULL)
		redisFree(c);
	return ok;
}

/* a failed assertion aborts this process: the server must not outlive it */
static void
die_with_parent(gpointer data)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
}

static void
redis_start(Fixture *f)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autofree gchar *port = g_strdup_printf("%u", f->port);
	gint64 deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;

	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
					     G_SUBPROCESS_FLAGS_STDERR_SILENCE);
	g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
	f->redis = g_subprocess_launcher_spawn(launcher,
					       &error,
					       REDIS_SERVER,
					       "--port",
					       port,
					       "--bind",
					       "127.0.0.1",
					       "--unixsocket",
					       f->socket,
					       "--dir",
					       f->dir,
					       "--save",
					       "",
					       "--appendonly",
					       "no",
					       "--daemonize",
					       "no",
					       NULL);
	g_assert_no_error(error);
	while (!redis_answers(f->socket)) {
		g_assert_cmpint(g_get_monotonic_time(), <, deadline);
		g_usleep(20000);
	}
}

static void
redis_stop(Fixture *f)
{
	g_autoptr(GError) error = NULL;

	if (f->redis == NULL)
		return;
	g_subprocess_send_signal(f->redis, SIGTERM);
	g_subprocess_wait(f->redis, NULL, &error);
	g_assert_no_error(error);
	g_clear_object(&f->redis);
}

static void
fixture_set_up(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	if (!g_file_test(REDIS_SERVER, G_FILE_TEST_IS_EXECUTABLE)) {
		g_test_skip(REDIS_SERVER " is not installed");
		return;
	}
	f->dir = g_dir_make_tmp("codechat-cluster-XXXXXX", &error);
	g_assert_no_error(error);
	f->socket = g_build_filename(f->dir, "redis.sock", NULL);
	f->url = g_strconcat("unix://", f->socket, NULL);
	if (data != NULL) {
		/* a port that was free a moment ago */
		g_autoptr(GSocket) sock = NULL;
		g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
		g_autoptr(GSocketAddress) any = g_inet_socket_address_new(lo, 0);
		g_autoptr(GSocketAddress) bound = NULL;

		sock = g_socket_new(G_SOCKET_FAMILY_IPV4,
				    G_SOCKET_TYPE_STREAM,
				    G_SOCKET_PROTOCOL_TCP,
				    &error);
		g_assert_no_error(error);
		g_socket_bind(sock, any, TRUE, &error);
		g_assert_no_error(error);
		bound = g_socket_get_local_address(sock, &error);
		g_assert_no_error(error);
		f->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
	}
	redis_start(f);
}

static void
fixture_tear_down(Fixture *f, gconstpointer data)
{
	redis_stop(f);
	if (f->dir != NULL) {
		g_autofree gchar *dump = g_build_filename(f->dir, "dump.rdb", NULL);
		g_unlink(dump);
		g_unlink(f->socket);
		g_rmdir(f->dir);
	}
	g_free(f->dir);
	g_free(f->socket);
	g_free(f->url);
}

/* ------------------------------------------------------------------ */

static void
presence_cb(CodechatCluster *cluster,
	    const gchar *room,
	    const gchar *nick,
	    const gchar *event,
	    gpointer user_data)
{
	Daemon *d = user_data;
	g_ptr_array_add(d->events, g_strdup_printf("%s/%s/%s", room, nick, event));
}

static gboolean
is_ready(gpointer data)
{
	Daemon *d = data;
	return codechat_cluster_is_ready(d->cluster);
}

static gboolean
is_not_ready(gpointer data)
{
	return !is_ready(data);
}

static Daemon *
daemon_new(Fixture *f, guint heartbeat_ms, guint ttl_ms)
{
	g_autoptr(GError) error = NULL;
	Daemon *d = g_new0(Daemon, 1);

	d->cluster = codechat_cluster_new_full(f->url, heartbeat_ms, ttl_ms, &error);
	g_assert_no_error(error);
	g_assert_nonnull(d->cluster);
	d->events = g_ptr_array_new_with_free_func(g_free);
	g_signal_connect(d->cluster, "presence", G_CALLBACK(presence_cb), d);
	g_assert_true(wait_for(is_ready, d, WAIT_MS));
	return d;
}

/* without a clean shutdown when crash */
static void
daemon_free(Daemon *d, gboolean crash)
{
	if (crash)
		codechat_cluster_simulate_crash(d->cluster);
	g_signal_handlers_disconnect_by_data(d->cluster, d);
	g_object_unref(d->cluster);
	g_ptr_array_unref(d->events);
	g_free(d);
}

static guint
count_events(Daemon *d, const gchar *event)
{
	guint n = 0;

	for (guint i = 0; i < d->events->len; i++)
		n += g_str_equal(g_ptr_array_index(d->events, i), event);
	return n;
}

static gchar *
joined_events(Daemon *d)
{
	gchar *s;

	g_ptr_array_add(d->events, NULL);
	s = g_strjoinv(",", (gchar **)d->events->pdata);
	g_ptr_array_remove_index(d->events, d->events->len - 1);
	return s;
}

static gchar *
remote_members(Daemon *d, const gchar *room)
{
	g_autoptr(GPtrArray) nicks = codechat_cluster_dup_remote_members(d->cluster, room);
	g_ptr_array_add(nicks, NULL);
	return g_strjoinv(",", (gchar **)nicks->pdata);
}

typedef struct {
	gboolean done;
	gboolean claimed;
	GError *error;
} ClaimResult;

static void
claim_cb(gboolean claimed, const GError *error, gpointer user_data)
{
	ClaimResult *r = user_data;
	r->done = TRUE;
	r->claimed = claimed;
	r->error = error != NULL ? g_error_copy(error) : NULL;
}

static gboolean
claim_done(gpointer data)
{
	return ((ClaimResult *)data)->done;
}

/* claims and waits for the answer */
static gboolean
claim(Daemon *d, const gchar *nick, GError **error)
{
	ClaimResult r = {0};

	codechat_cluster_claim_nick(d->cluster, nick, claim_cb, &r);
	g_assert_false(r.done); /* always from the main loop */
	g_assert_true(wait_for(claim_done, &r, WAIT_MS));
	if (r.error != NULL)
		g_propagate_error(error, r.error);
	return r.claimed;
}

typedef struct {
	Daemon *d;
	const gchar *room;
	guint count;
} CountWait;

static gboolean
count_is(gpointer data)
{
	CountWait *w = data;
	return codechat_cluster_count_remote_members(w->d->cluster, w->room) == w->count;
}

static void
wait_count(Daemon *d, const gchar *room, guint count)
{
	CountWait w = {d, room, count};
	g_assert_true(wait_for(count_is, &w, WAIT_MS));
}

typedef struct {
	Daemon *d;
	const gchar *nick;
	gboolean remote;
} RemoteWait;

static gboolean
remote_is(gpointer data)
{
	RemoteWait *w = data;
	return codechat_cluster_nick_is_remote(w->d->cluster, w->nick) == w->remote;
}

static void
wait_remote(Daemon *d, const gchar *nick, gboolean remote)
{
	RemoteWait w = {d, nick, remote};
	g_assert_true(wait_for(remote_is, &w, WAIT_MS));
}

/* ------------------------------------------------------------------ */

static void
test_url(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(CodechatCluster) cluster = NULL;
	g_autofree gchar *missing = NULL;

	if (f->dir == NULL)
		return;
	cluster = codechat_cluster_new("http://localhost/", &error);
	g_assert_error(error, CODECHAT_ERROR, CODECHAT_ERROR_INVALID_ARGUMENT);
	g_assert_null(cluster);
	g_clear_error(&error);

	cluster = codechat_cluster_new("redis://localhost/zero", &error);
	g_assert_error(error, CODECHAT_ERROR, CODECHAT_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);

	missing = g_strconcat("unix://", f->dir, "/nothing.sock", NULL);
	cluster = codechat_cluster_new(missing, &error);
	g_assert_error(error, CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED);
	g_assert_null(cluster);
	g_clear_error(&error);

	cluster = codechat_cluster_new(f->url, &error);
	g_assert_no_error(error);
	g_assert_nonnull(codechat_cluster_get_id(cluster));
}

static void
test_claim(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	Daemon *a, *b;

	if (f->dir == NULL)
		return;
	a = daemon_new(f, 2000, 10000);
	b = daemon_new(f, 2000, 10000);
	g_assert_cmpstr(codechat_cluster_get_id(a->cluster),
			!=,
			codechat_cluster_get_id(b->cluster));

	g_assert_true(claim(a, "Alice", &error));
	g_assert_no_error(error);
	g_assert_false(claim(b, "alice", &error));
	g_assert_no_error(error);
	g_assert_false(claim(b, "ALICE", &error));
	g_assert_no_error(error);
	g_assert_true(claim(b, "bob", &error));
	g_assert_false(claim(a, "Bob", &error));
	wait_remote(b, "aLiCe", TRUE);
	wait_remote(a, "BOB", TRUE);
	g_assert_false(codechat_cluster_nick_is_remote(a->cluster, "alice"));

	codechat_cluster_release_nick(a->cluster, "Alice");
	wait_remote(b, "alice", FALSE);
	g_assert_true(claim(b, "alice", &error));
	g_assert_no_error(error);
	g_assert_false(claim(a, "Alice", &error));
	g_assert_no_error(error);

	/* a claim is no membership: nobody said join */
	g_assert_cmpuint(a->events->len, ==, 0);
	g_assert_cmpuint(b->events->len, ==, 0);
	daemon_free(a, FALSE);
	daemon_free(b, FALSE);
}

static void
test_presence(Fixture *f, gconstpointer data)
{
	g_autofree gchar *members = NULL;
	g_autofree gchar *events = NULL;
	g_autoptr(GPtrArray) rooms = NULL;
	Daemon *a, *b, *c;

	if (f->dir == NULL)
		return;
	a = daemon_new(f, 2000, 10000);
	b = daemon_new(f, 2000, 10000);
	g_assert_true(claim(a, "alice", NULL));
	g_assert_true(claim(b, "bob", NULL));

	codechat_cluster_join(a->cluster, "general", "alice");
	codechat_cluster_join(a->cluster, "rust", "alice");
	codechat_cluster_join(b->cluster, "general", "bob");
	wait_count(b, "general", 1);
	wait_count(b, "rust", 1);
	wait_count(a, "general", 1);
	members = remote_members(b, "general");
	g_assert_cmpstr(members, ==, "alice");
	g_clear_pointer(&members, g_free);
	members = remote_members(a, "general");
	g_assert_cmpstr(members, ==, "bob");
	g_clear_pointer(&members, g_free);
	g_assert_cmpuint(codechat_cluster_count_remote_members(a->cluster, "rust"), ==, 0);
	rooms = codechat_cluster_dup_remote_rooms(b->cluster);
	g_assert_cmpuint(rooms->len, ==, 2);
	g_assert_cmpstr(g_ptr_array_index(rooms, 0), ==, "general");
	g_assert_cmpstr(g_ptr_array_index(rooms, 1), ==, "rust");

	/* a daemon that comes later loads what is there */
	c = daemon_new(f, 2000, 10000);
	members = remote_members(c, "general");
	g_assert_cmpstr(members, ==, "alice,bob");
	g_clear_pointer(&members, g_free);
	g_assert_true(codechat_cluster_nick_is_remote(c->cluster, "Alice"));

	codechat_cluster_part(a->cluster, "general", "alice");
	wait_count(b, "general", 0);
	wait_count(c, "general", 1);
	codechat_cluster_quit(a->cluster, "alice");
	wait_count(b, "rust", 0);
	wait_remote(b, "alice", FALSE);
	wait_count(c, "rust", 0);
	g_assert_false(codechat_cluster_nick_is_remote(c->cluster, "alice"));
	/* quit gave the nick back */
	g_assert_true(claim(c, "ALICE", NULL));

	spin(200);
	events = joined_events(b);
	g_assert_cmpstr(events,
			==,
			"general/alice/join,rust/alice/join,general/alice/part,rust/alice/quit");
	g_clear_pointer(&events, g_free);
	/* never its own */
	events = joined_events(a);
	g_assert_cmpstr(events, ==, "general/bob/join");
	g_clear_pointer(&events, g_free);
	g_assert_cmpuint(count_events(c, "general/alice/part"), ==, 1);
	g_assert_cmpuint(count_events(c, "rust/alice/quit"), ==, 1);

	daemon_free(c, FALSE);
	daemon_free(a, FALSE);
	daemon_free(b, FALSE);
}

static void
test_shutdown(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	Daemon *a, *b;

	if (f->dir == NULL)
		return;
	/* expiry far off: the quit must come from the shutdown */
	a = daemon_new(f, 2000, 60000);
	b = daemon_new(f, 2000, 60000);
	g_assert_true(claim(a, "alice", NULL));
	codechat_cluster_join(a->cluster, "general", "alice");
	wait_count(b, "general", 1);

	g_assert_true(codechat_cluster_shutdown(a->cluster, &error));
	g_assert_no_error(error);
	g_assert_false(codechat_cluster_is_ready(a->cluster));
	wait_count(b, "general", 0);
	g_assert_cmpuint(count_events(b, "general/alice/quit"), ==, 1);
	g_assert_true(claim(b, "alice", NULL));
	daemon_free(a, FALSE);

	/* dispose says goodbye too */
	a = daemon_new(f, 2000, 60000);
	g_assert_true(claim(a, "carol", NULL));
	codechat_cluster_join(a->cluster, "rust", "carol");
	wait_count(b, "rust", 1);
	daemon_free(a, FALSE);
	wait_count(b, "rust", 0);
	g_assert_cmpuint(count_events(b, "rust/carol/quit"), ==, 1);
	daemon_free(b, FALSE);
}

static void
test_dead(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	Daemon *a, *b, *c;

	if (f->dir == NULL)
		return;
	a = daemon_new(f, 100, 500);
	b = daemon_new(f, 100, 500);
	c = daemon_new(f, 100, 500);
	g_assert_true(claim(a, "alice", NULL));
	g_assert_true(claim(a, "bob", NULL));
	codechat_cluster_join(a->cluster, "r1", "alice");
	codechat_cluster_join(a->cluster, "r2", "alice");
	codechat_cluster_join(a->cluster, "r1", "bob");
	g_assert_true(claim(b, "carol", NULL));
	codechat_cluster_join(b->cluster, "r1", "carol");
	wait_count(b, "r1", 2);
	wait_count(c, "r1", 3);
	wait_count(c, "r2", 1);

	/* a live daemon keeps its members past the expiry */
	spin(1000);
	g_assert_cmpuint(codechat_cluster_count_remote_members(c->cluster, "r1"), ==, 3);
	g_assert_false(claim(c, "alice", &error));
	g_assert_no_error(error);

	daemon_free(a, TRUE);
	wait_count(b, "r1", 0);
	wait_count(b, "r2", 0);
	wait_count(c, "r1", 1);
	wait_count(c, "r2", 0);
	/* whoever reaped it, every observer tells each quit once */
	spin(1000);
	for (guint i = 0; i < 2; i++) {
		Daemon *d = i == 0 ? b : c;
		g_assert_cmpuint(count_events(d, "r1/alice/quit"), ==, 1);
		g_assert_cmpuint(count_events(d, "r2/alice/quit"), ==, 1);
		g_assert_cmpuint(count_events(d, "r1/bob/quit"), ==, 1);
	}
	g_assert_cmpuint(count_events(b, "r1/carol/quit"), ==, 0);
	g_assert_cmpuint(count_events(c, "r1/carol/quit"), ==, 0);
	g_assert_false(codechat_cluster_nick_is_remote(c->cluster, "alice"));
	g_assert_true(claim(c, "Alice", &error));
	g_assert_no_error(error);
	g_assert_true(claim(b, "bob", &error));
	daemon_free(b, FALSE);
	daemon_free(c, FALSE);
}

static void
test_takeover(Fixture *f, gconstpointer data)
{
	Daemon *a, *b;

	if (f->dir == NULL)
		return;
	/* the dead daemon's claim is taken over by the claim itself, even
	 * before any heartbeat reaped it */
	a = daemon_new(f, 100, 300);
	b = daemon_new(f, 60000, 120000);
	g_assert_true(claim(a, "alice", NULL));
	codechat_cluster_join(a->cluster, "r1", "alice");
	wait_count(b, "r1", 1);
	daemon_free(a, TRUE);
	g_assert_false(claim(b, "alice", NULL));
	spin(400);
	g_assert_true(claim(b, "alice", NULL));
	wait_count(b, "r1", 0);
	g_assert_cmpuint(count_events(b, "r1/alice/quit"), ==, 1);
	daemon_free(b, FALSE);
}

/* PUBLISH on the presence channel, as a daemon would */
static void
publish(Fixture *f, const gchar *payload)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectUnixWithTimeout(f->socket, tv);
	redisReply *reply;

	g_assert_nonnull(c);
	g_assert_cmpint(c->err, ==, 0);
	reply = redisCommand(c, "PUBLISH codechat:presence %s", payload);
	g_assert_nonnull(reply);
	g_assert_cmpint(reply->type, ==, REDIS_REPLY_INTEGER);
	freeReplyObject(reply);
	redisFree(c);
}

static void
test_replayed_events(Fixture *f, gconstpointer data)
{
	g_autofree gchar *join = NULL;
	g_autofree gchar *quit = NULL;
	Daemon *a, *b;

	if (f->dir == NULL)
		return;
	a = daemon_new(f, 2000, 10000);
	g_assert_true(claim(a, "alice", NULL));
	codechat_cluster_join(a->cluster, "r1", "alice");
	codechat_cluster_join(a->cluster, "r2", "alice");
	b = daemon_new(f, 2000, 10000);
	wait_count(b, "r2", 1);

	/* older than b's snapshot: already in it, or superseded */
	publish(f, "{\"seq\":1,\"d\":\"x\",\"room\":\"r9\",\"nick\":\"zed\",\"event\":\"join\"}");
	/* said twice (a reaper and a snapshot, say): once is news, twice not */
	join = g_strdup_printf("{\"seq\":900001,\"d\":\"%s\",\"room\":\"r1\",\"nick\":"
			       "\"alice\",\"event\":\"join\"}",
			       codechat_cluster_get_id(a->cluster));
	publish(f, join);
	quit = g_strdup_printf("{\"seq\":900002,\"d\":\"%s\",\"nick\":\"alice\",\"event\":"
			       "\"quit\",\"rooms\":[\"r2\"]}",
			       codechat_cluster_get_id(a->cluster));
	publish(f, quit);
	publish(f, quit);
	wait_count(b, "r2", 0);
	spin(200);
	g_assert_cmpuint(codechat_cluster_count_remote_members(b->cluster, "r9"), ==, 0);
	/* the snapshot's two joins come in no particular order */
	g_assert_cmpuint(b->events->len, ==, 3);
	g_assert_cmpuint(count_events(b, "r1/alice/join"), ==, 1);
	g_assert_cmpuint(count_events(b, "r2/alice/join"), ==, 1);
	g_assert_cmpstr(g_ptr_array_index(b->events, 2), ==, "r2/alice/quit");
	daemon_free(b, FALSE);
	daemon_free(a, FALSE);
}

static void
test_redis_restart(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *members = NULL;
	Daemon *a, *b, *c;

	if (f->dir == NULL)
		return;
	/* losing Redis is worth a warning, which must not end the test */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	a = daemon_new(f, 100, 1000);
	b = daemon_new(f, 100, 1000);
	g_assert_true(claim(a, "alice", NULL));
	g_assert_true(claim(b, "bob", NULL));
	codechat_cluster_join(a->cluster, "general", "alice");
	codechat_cluster_join(b->cluster, "general", "bob");
	wait_count(a, "general", 1);
	wait_count(b, "general", 1);

	redis_stop(f);
	g_assert_true(wait_for(is_not_ready, a, WAIT_MS));
	g_assert_true(wait_for(is_not_ready, b, WAIT_MS));
	g_assert_false(claim(a, "carol", &error));
	g_assert_error(error, CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED);
	g_clear_error(&error);
	/* kept, and written once Redis is back */
	codechat_cluster_join(a->cluster, "rust", "alice");
	spin(300); /* a few reconnection attempts */

	redis_start(f); /* empty: it saved nothing */
	g_assert_true(wait_for(is_ready, a, WAIT_MS));
	g_assert_true(wait_for(is_ready, b, WAIT_MS));
	c = daemon_new(f, 100, 1000);
	members = remote_members(c, "general");
	g_assert_cmpstr(members, ==, "alice,bob");
	g_clear_pointer(&members, g_free);
	members = remote_members(c, "rust");
	g_assert_cmpstr(members, ==, "alice");
	g_clear_pointer(&members, g_free);
	g_assert_false(claim(c, "ALICE", &error));
	g_assert_no_error(error);
	g_assert_false(claim(c, "Bob", &error));
	g_assert_no_error(error);
	wait_count(b, "rust", 1);
	members = remote_members(b, "general");
	g_assert_cmpstr(members, ==, "alice");
	g_assert_cmpuint(count_events(b, "rust/alice/join"), ==, 1);
	g_assert_true(claim(a, "carol", &error));
	g_assert_no_error(error);

	daemon_free(c, FALSE);
	daemon_free(a, FALSE);
	daemon_free(b, FALSE);
}

/* databases of one Redis are separate clusters, also for presence; a
 * database is the same one over TCP and over the unix socket (?db=) */
static void
test_databases(Fixture *f, gconstpointer data)
{
	g_autofree gchar *url1 = g_strdup_printf("redis://127.0.0.1:%u/1", f->port);
	g_autofree gchar *url1_unix = g_strdup_printf("unix://%s?db=1", f->socket);
	g_autofree gchar *url2 = g_strdup_printf("redis://127.0.0.1:%u/2", f->port);
	Daemon *a, *b, *c;

	if (f->dir == NULL)
		return;
	g_free(f->url);
	f->url = g_strdup(url1_unix);
	a = daemon_new(f, 2000, 10000);
	g_free(f->url);
	f->url = g_strdup(url1);
	b = daemon_new(f, 2000, 10000);
	g_free(f->url);
	f->url = g_strdup(url2);
	c = daemon_new(f, 2000, 10000);

	g_assert_true(claim(a, "alice", NULL));
	g_assert_true(claim(c, "alice", NULL));
	g_assert_false(claim(b, "alice", NULL));
	codechat_cluster_join(a->cluster, "general", "alice");
	codechat_cluster_join(c->cluster, "general", "alice");
	wait_count(b, "general", 1);
	spin(200);
	g_assert_cmpuint(count_events(b, "general/alice/join"), ==, 1);
	g_assert_cmpuint(codechat_cluster_count_remote_members(a->cluster, "general"), ==, 0);
	g_assert_cmpuint(codechat_cluster_count_remote_members(c->cluster, "general"), ==, 0);
	g_assert_cmpuint(c->events->len, ==, 0);
	daemon_free(a, FALSE);
	daemon_free(b, FALSE);
	daemon_free(c, FALSE);
}

/* closes the connections of one daemon, as a network blip would */
static void
kill_connections(Fixture *f, Daemon *d)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectUnixWithTimeout(f->socket, tv);
	g_autofree gchar *name =
	    g_strdup_printf("name=codechatd-%s ", codechat_cluster_get_id(d->cluster));
	g_auto(GStrv) lines = NULL;
	redisReply *reply;
	guint killed = 0;

	g_assert_nonnull(c);
	reply = redisCommand(c, "CLIENT LIST");
	g_assert_nonnull(reply);
	g_assert_cmpint(reply->type, ==, REDIS_REPLY_STRING);
	lines = g_strsplit(reply->str, "\n", -1);
	freeReplyObject(reply);
	for (guint i = 0; lines[i] != NULL; i++) {
		guint64 id;

		if (strstr(lines[i], name) == NULL)
			continue;
		g_assert_true(g_str_has_prefix(lines[i], "id="));
		id = g_ascii_strtoull(lines[i] + 3, NULL, 10);
		reply = redisCommand(c, "CLIENT KILL ID %" G_GUINT64_FORMAT, id);
		g_assert_nonnull(reply);
		freeReplyObject(reply);
		killed++;
	}
	g_assert_cmpuint(killed, ==, 2);
	redisFree(c);
}

/* Redis kept everything, only this daemon's connections went: what its
 * sessions did meanwhile reaches the others */
static void
test_blip(Fixture *f, gconstpointer data)
{
	Daemon *a, *b;

	if (f->dir == NULL)
		return;
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	a = daemon_new(f, 2000, 10000);
	b = daemon_new(f, 2000, 10000);
	g_assert_true(claim(a, "alice", NULL));
	g_assert_true(claim(a, "bob", NULL));
	codechat_cluster_join(a->cluster, "r1", "alice");
	codechat_cluster_join(a->cluster, "r2", "bob");
	codechat_cluster_join(a->cluster, "r3", "bob");
	wait_count(b, "r3", 1);

	kill_connections(f, a);
	g_assert_true(wait_for(is_not_ready, a, WAIT_MS));
	codechat_cluster_quit(a->cluster, "alice");
	codechat_cluster_part(a->cluster, "r2", "bob");
	codechat_cluster_join(a->cluster, "r4", "bob");
	g_assert_true(wait_for(is_ready, a, WAIT_MS));
	wait_count(b, "r4", 1);
	wait_count(b, "r1", 0);
	wait_count(b, "r2", 0);
	g_assert_true(codechat_cluster_is_ready(b->cluster));
	g_assert_false(codechat_cluster_nick_is_remote(b->cluster, "alice"));
	g_assert_true(codechat_cluster_nick_is_remote(b->cluster, "bob"));
	spin(200);
	g_assert_cmpuint(count_events(b, "r1/alice/quit"), ==, 1);
	g_assert_cmpuint(count_events(b, "r2/bob/part"), ==, 1);
	g_assert_cmpuint(count_events(b, "r3/bob/join"), ==, 1);
	g_assert_cmpuint(count_events(b, "r4/bob/join"), ==, 1);
	g_assert_cmpuint(b->events->len, ==, 6);
	daemon_free(a, FALSE);
	daemon_free(b, FALSE);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

#define ADD(path, func) g_test_add(path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
	ADD("/codechat/cluster/url", test_url);
	ADD("/codechat/cluster/claim", test_claim);
	ADD("/codechat/cluster/presence", test_presence);
	ADD("/codechat/cluster/shutdown", test_shutdown);
	ADD("/codechat/cluster/dead", test_dead);
	ADD("/codechat/cluster/takeover", test_takeover);
	ADD("/codechat/cluster/replayed-events", test_replayed_events);
	ADD("/codechat/cluster/redis-restart", test_redis_restart);
	ADD("/codechat/cluster/blip", test_blip);
#undef ADD
	g_test_add("/codechat/cluster/databases",
		   Fixture,
		   "tcp",
		   fixture_set_up,
		   test_databases,
		   fixture_tear_down);
	return g_test_run();
}
