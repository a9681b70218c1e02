/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define CODECHAT_TEST_REDIS_SERVER "/usr/bin/redis-server"

/* a real redis-server on a free loopback port, its data (an AOF with
 * appendfsync always) in a temporary directory of its own */
typedef struct {
	GSubprocess *proc; /* (owned) (nullable) NULL while stopped */
	gchar *dir;	   /* (owned) */
	gchar *url;	   /* (owned) redis://127.0.0.1:PORT */
	guint16 port;
} CodechatTestRedis;

CodechatTestRedis *
codechat_test_redis_start(void);
void
codechat_test_redis_stop(CodechatTestRedis *redis);
gboolean
codechat_test_redis_restart(CodechatTestRedis *redis);
void
codechat_test_redis_free(CodechatTestRedis *redis);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatTestRedis, codechat_test_redis_free)

G_END_DECLS
