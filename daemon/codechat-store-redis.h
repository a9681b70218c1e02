/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include "codechat-store.h"

G_BEGIN_DECLS

/* the shared store: several codechatd on one Redis */
#define CODECHAT_TYPE_STORE_REDIS (codechat_store_redis_get_type())
G_DECLARE_FINAL_TYPE(CodechatStoreRedis, codechat_store_redis, CODECHAT, STORE_REDIS, GObject)

/* after the lost connection was noticed, the first retry waits this long,
 * then twice as long each time up to the maximum */
#define CODECHAT_STORE_REDIS_BACKOFF_MIN_MS 100
#define CODECHAT_STORE_REDIS_BACKOFF_MAX_MS 5000

gboolean
codechat_store_redis_parse_url(const gchar *url,
			       gchar **host,
			       gint *port,
			       gchar **socket_path,
			       gint *db,
			       GError **error);
CodechatStore *
codechat_store_redis_new(const gchar *url, guint history_max, GError **error);
gboolean
codechat_store_redis_is_connected(CodechatStoreRedis *self);
void
codechat_store_redis_set_commit_func(CodechatStoreRedis *self,
				     CodechatStoreCommitFunc func,
				     gpointer user_data,
				     GDestroyNotify notify);

G_END_DECLS
