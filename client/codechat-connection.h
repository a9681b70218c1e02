/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define CODECHAT_TYPE_CONNECTION (codechat_connection_get_type())
G_DECLARE_FINAL_TYPE(CodechatConnection, codechat_connection, CODECHAT, CONNECTION, GObject)

void
codechat_connection_set_tls_database(GTlsDatabase *database);

CodechatConnection *
codechat_connection_new(const gchar *uri, const gchar *nick, const gchar *token);

const gchar *
codechat_connection_get_uri(CodechatConnection *self);
const gchar *
codechat_connection_get_nick(CodechatConnection *self);
JsonObject *
codechat_connection_get_welcome(CodechatConnection *self);
const gchar *
codechat_connection_get_epoch(CodechatConnection *self);
gsize
codechat_connection_get_max_text(CodechatConnection *self);
gboolean
codechat_connection_is_ready(CodechatConnection *self);

void
codechat_connection_connect_async(CodechatConnection *self,
				  GCancellable *cancellable,
				  GAsyncReadyCallback callback,
				  gpointer user_data);
gboolean
codechat_connection_connect_finish(CodechatConnection *self, GAsyncResult *result, GError **error);

void
codechat_connection_request_async(CodechatConnection *self,
				  JsonObject *request,
				  guint timeout_s,
				  GAsyncReadyCallback callback,
				  gpointer user_data);
JsonObject *
codechat_connection_request_finish(CodechatConnection *self, GAsyncResult *result, GError **error);

void
codechat_connection_close_async(CodechatConnection *self,
				GAsyncReadyCallback callback,
				gpointer user_data);
gboolean
codechat_connection_close_finish(CodechatConnection *self, GAsyncResult *result, GError **error);

G_END_DECLS
