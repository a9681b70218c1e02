/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <glib/gstdio.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/prctl.h>

#include "codechat-test-daemon.h"
#include "codechat-test-redis.h"

#define START_WAIT_US (10 * G_USEC_PER_SEC)

/* a port nobody listens on now; redis-server may still lose a race for
 * it, and the caller then tries another */
static guint16
free_port(void)
{
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) any = g_inet_socket_address_new(loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;

	socket =
	    g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
	g_assert_nonnull(socket);
	g_assert_true(g_socket_bind(socket, any, FALSE, NULL));
	bound = g_socket_get_local_address(socket, NULL);
	g_assert_nonnull(bound);
	return g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
}

static gboolean
ping(guint16 port)
{
	struct timeval timeout = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, timeout);
	redisReply *reply;
	gboolean ok;

	if (c == NULL || c->err != 0) {
		if (c != NULL)
			redisFree(c);
		return FALSE;
	}
	reply = redisCommand(c, "PING");
	ok = reply != NULL && reply->type == REDIS_REPLY_STATUS &&
	     g_strcmp0(reply->str, "PONG") == 0;
	if (reply != NULL)
		freeReplyObject(reply);
	redisFree(c);
	return ok;
}

static void
die_with_parent(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
}

static gboolean
spawn(CodechatTestRedis *redis)
{
	g_autofree gchar *port = g_strdup_printf("%u", redis->port);
	g_autofree gchar *log = g_build_filename(redis->dir, "redis.log", NULL);
	g_autoptr(GError) error = NULL;
	gint64 deadline = g_get_monotonic_time() + START_WAIT_US;

	g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
	    G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE);

	/* it goes with the test, even one that crashed */
	g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
	redis->proc = g_subprocess_launcher_spawn(launcher,
						  &error,
						  CODECHAT_TEST_REDIS_SERVER,
						  "--port",
						  port,
						  "--bind",
						  "127.0.0.1",
						  "--save",
						  "",
						  "--appendonly",
						  "yes",
						  "--appendfsync",
						  "always",
						  "--dir",
						  redis->dir,
						  "--logfile",
						  log,
						  "--daemonize",
						  "no",
						  NULL);
	g_assert_no_error(error);
	while (g_get_monotonic_time() < deadline) {
		if (ping(redis->port))
			return TRUE;
		/* it exited (reaped by GLib's worker): the port was taken,
		 * most likely */
		if (g_subprocess_get_identifier(redis->proc) == NULL)
			break;
		g_usleep(20 * 1000);
	}
	codechat_test_redis_stop(redis);
	return FALSE;
}

/**
 * codechat_test_redis_start:
 *
 * Returns: (nullable): the server, answering PING; %NULL when there is no
 * redis-server, and then the test is skipped
 */
CodechatTestRedis *
codechat_test_redis_start(void)
{
	g_autoptr(CodechatTestRedis) redis = NULL;
	g_autoptr(GError) error = NULL;

	if (!g_file_test(CODECHAT_TEST_REDIS_SERVER, G_FILE_TEST_IS_EXECUTABLE)) {
		g_test_skip("no " CODECHAT_TEST_REDIS_SERVER " (Debian: redis-server)");
		return NULL;
	}
	redis = g_new0(CodechatTestRedis, 1);
	redis->dir = g_dir_make_tmp("codechat-redis-XXXXXX", &error);
	g_assert_no_error(error);
	for (guint attempt = 0; attempt < 5; attempt++) {
		redis->port = free_port();
		if (spawn(redis)) {
			redis->url = g_strdup_printf("redis://127.0.0.1:%u", redis->port);
			return g_steal_pointer(&redis);
		}
	}
	g_error("redis-server did not start; see %s/redis.log", redis->dir);
	return NULL;
}

/* SIGTERM, and waits until it exited (it writes nothing more: the AOF
 * is synced at every write) */
void
codechat_test_redis_stop(CodechatTestRedis *redis)
{
	if (redis->proc == NULL)
		return;
	g_subprocess_send_signal(redis->proc, SIGTERM);
	g_subprocess_wait(redis->proc, NULL, NULL);
	g_clear_object(&redis->proc);
}

/* on the same port, over the same files */
gboolean
codechat_test_redis_restart(CodechatTestRedis *redis)
{
	codechat_test_redis_stop(redis);
	for (guint attempt = 0; attempt < 50; attempt++) {
		if (spawn(redis))
			return TRUE;
		g_usleep(100 * 1000);
	}
	return FALSE;
}

void
codechat_test_redis_free(CodechatTestRedis *redis)
{
	if (redis == NULL)
		return;
	codechat_test_redis_stop(redis);
	if (redis->dir != NULL)
		codechat_test_rm_rf(redis->dir);
	g_free(redis->dir);
	g_free(redis->url);
	g_free(redis);
}
