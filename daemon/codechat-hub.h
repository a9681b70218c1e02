/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <libsoup/soup.h>

#include "codechat-accounts.h"
#include "codechat-cluster.h"
#include "codechat-metrics.h"
#include "codechat-store.h"
#include "codechat-ws.h"

G_BEGIN_DECLS

typedef struct {
	guint rate;	       /* say per second per session, 0 for no limit */
	guint burst;	       /* bucket size of the rate limit */
	gsize max_text;	       /* bytes of text in one message */
	gsize max_frame;       /* bytes of one incoming WebSocket message */
	guint hello_timeout;   /* seconds from the upgrade to hello */
	guint keepalive;       /* seconds between pings, 0 for none */
	guint max_connections; /* open WebSocket sessions, 0 for no limit */
	guint max_per_address; /* open sessions from one IP address, 0 for no limit */
	gsize max_outbound;    /* bytes queued for a session that reads too slowly, 0 for none */
} CodechatHubConfig;

#define CODECHAT_DEFAULT_MAX_PER_ADDRESS 64
#define CODECHAT_DEFAULT_MAX_OUTBOUND	 (1024 * 1024)

void
codechat_hub_config_init(CodechatHubConfig *config);

#define CODECHAT_TYPE_HUB (codechat_hub_get_type())
G_DECLARE_FINAL_TYPE(CodechatHub, codechat_hub, CODECHAT, HUB, GObject)

CodechatHub *
codechat_hub_new(CodechatStore *store, const CodechatHubConfig *config);
void
codechat_hub_set_config(CodechatHub *self, const CodechatHubConfig *config);
void
codechat_hub_add_connection(CodechatHub *self, CodechatWsConn *conn, const gchar *peer);
guint
codechat_hub_get_n_connections(CodechatHub *self);
guint
codechat_hub_get_n_rooms(CodechatHub *self);
CodechatMetrics *
codechat_hub_get_metrics(CodechatHub *self);

typedef void (*CodechatHubRoomFunc)(const gchar *name, guint n_members, gpointer user_data);

void
codechat_hub_foreach_room(CodechatHub *self, CodechatHubRoomFunc func, gpointer user_data);
void
codechat_hub_shutdown(CodechatHub *self);
void
codechat_hub_set_accounts(CodechatHub *self, CodechatAccounts *accounts, gboolean require_auth);
void
codechat_hub_set_cluster(CodechatHub *self, CodechatCluster *cluster);

/* for the D-Bus service: the same checks, store and fan-out as a say */
typedef void (*CodechatHubPostFunc)(CodechatMessage *msg, const GError *error, gpointer user_data);

gboolean
codechat_hub_post(CodechatHub *self,
		  CodechatMessage *msg,
		  CodechatHubPostFunc func,
		  gpointer user_data,
		  GError **error);

typedef struct {
	gchar *name;
	guint members;
	guint64 last_id;
} CodechatRoomInfo;

void
codechat_room_info_free(CodechatRoomInfo *info);
GPtrArray *
codechat_hub_list_rooms(CodechatHub *self);
GStrv
codechat_hub_list_members(CodechatHub *self, const gchar *room, GError **error);
/* @messages: (element-type CodechatMessage) (transfer none) (nullable): NULL on error */
typedef void (*CodechatHubHistoryFunc)(GPtrArray *messages,
				       const GError *error,
				       gpointer user_data);

void
codechat_hub_get_history_async(CodechatHub *self,
			       const gchar *room,
			       guint64 before,
			       guint limit,
			       CodechatHubHistoryFunc func,
			       gpointer user_data);
const gchar *
codechat_hub_get_epoch(CodechatHub *self);

G_END_DECLS
