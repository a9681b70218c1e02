/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define CODECHAT_TYPE_CLUSTER (codechat_cluster_get_type())
G_DECLARE_FINAL_TYPE(CodechatCluster, codechat_cluster, CODECHAT, CLUSTER, GObject)

/**
 * CodechatClusterClaimFunc:
 * @claimed: %TRUE when this daemon now holds the nick
 * @error: (nullable): why the claim could not be decided, with
 *   %CODECHAT_ERROR_OVERLOADED when Redis is unreachable; %NULL when it was
 * @user_data: what was given to codechat_cluster_claim_nick()
 *
 * The answer to a nick claim; @claimed is %FALSE both when another live
 * daemon holds the nick (@error %NULL) and on errors.
 */
typedef void (*CodechatClusterClaimFunc)(gboolean claimed, const GError *error, gpointer user_data);

CodechatCluster *
codechat_cluster_new(const gchar *redis_url, GError **error);
CodechatCluster *
codechat_cluster_new_full(const gchar *redis_url, guint heartbeat_ms, guint ttl_ms, GError **error);
const gchar *
codechat_cluster_get_id(CodechatCluster *self);
gboolean
codechat_cluster_is_ready(CodechatCluster *self);

void
codechat_cluster_claim_nick(CodechatCluster *self,
			    const gchar *nick,
			    CodechatClusterClaimFunc func,
			    gpointer user_data);
void
codechat_cluster_release_nick(CodechatCluster *self, const gchar *nick);

void
codechat_cluster_join(CodechatCluster *self, const gchar *room, const gchar *nick);
void
codechat_cluster_part(CodechatCluster *self, const gchar *room, const gchar *nick);
void
codechat_cluster_quit(CodechatCluster *self, const gchar *nick);

GPtrArray *
codechat_cluster_dup_remote_members(CodechatCluster *self, const gchar *room);
guint
codechat_cluster_count_remote_members(CodechatCluster *self, const gchar *room);
GPtrArray *
codechat_cluster_dup_remote_rooms(CodechatCluster *self);
gboolean
codechat_cluster_nick_is_remote(CodechatCluster *self, const gchar *nick);

gboolean
codechat_cluster_shutdown(CodechatCluster *self, GError **error);

/* tests only: behave as if the process had died, without a word to Redis */
void
codechat_cluster_simulate_crash(CodechatCluster *self);

G_END_DECLS
