/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include "codechat-hub.h"

G_BEGIN_DECLS

/* seconds a TCP connection has to send a complete HTTP request */
#define CODECHAT_DEFAULT_HANDSHAKE_TIMEOUT 10
/* TCP connections without a complete HTTP request, at most */
#define CODECHAT_DEFAULT_MAX_HANDSHAKES 1024

#define CODECHAT_TYPE_SERVER (codechat_server_get_type())
G_DECLARE_FINAL_TYPE(CodechatServer, codechat_server, CODECHAT, SERVER, GObject)

CodechatServer *
codechat_server_new(CodechatHub *hub,
		    const gchar *const *allowed_origins,
		    gboolean permessage_deflate);
void
codechat_server_set_handshake_limits(CodechatServer *self, guint timeout, guint max_pending);
void
codechat_server_set_allowed_origins(CodechatServer *self, const gchar *const *allowed_origins);
gboolean
codechat_server_set_tls_files(CodechatServer *self,
			      const gchar *cert_path,
			      const gchar *key_path,
			      GError **error);
gboolean
codechat_server_listen(CodechatServer *self, const gchar *address, GError **error);
const gchar *
codechat_server_get_uri(CodechatServer *self);
void
codechat_server_disconnect(CodechatServer *self);

G_END_DECLS
