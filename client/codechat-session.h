/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "codechat-connection.h"

G_BEGIN_DECLS

#define CODECHAT_TYPE_SESSION (codechat_session_get_type())
G_DECLARE_FINAL_TYPE(CodechatSession, codechat_session, CODECHAT, SESSION, GObject)

CodechatSession *
codechat_session_new(const gchar *uri, const gchar *nick, const gchar *token);

void
codechat_session_add_room(CodechatSession *self, const gchar *room);
void
codechat_session_note_sent(CodechatSession *self, JsonObject *message);
void
codechat_session_start(CodechatSession *self);
CodechatConnection *
codechat_session_get_connection(CodechatSession *self);
const gchar *
codechat_session_get_epoch(CodechatSession *self);

void
codechat_session_close_async(CodechatSession *self,
			     GAsyncReadyCallback callback,
			     gpointer user_data);
gboolean
codechat_session_close_finish(CodechatSession *self, GAsyncResult *result, GError **error);

G_END_DECLS
