/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include "codechat-hub.h"

G_BEGIN_DECLS

#define CODECHAT_TYPE_SERVER (codechat_server_get_type())
G_DECLARE_FINAL_TYPE(CodechatServer, codechat_server, CODECHAT, SERVER, GObject)

CodechatServer *
codechat_server_new(CodechatHub *hub,
		    const gchar *const *allowed_origins,
		    gboolean permessage_deflate);
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
