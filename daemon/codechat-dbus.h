/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include "codechat-dbus-generated.h"
#include "codechat-hub.h"

G_BEGIN_DECLS

#define CODECHAT_DBUS_NAME "io.github.codechat.Codechat.Daemon"
#define CODECHAT_DBUS_PATH "/io/github/codechat/Codechat/Daemon"

#define CODECHAT_TYPE_DBUS_SERVICE (codechat_dbus_service_get_type())
G_DECLARE_FINAL_TYPE(CodechatDbusService,
		     codechat_dbus_service,
		     CODECHAT,
		     DBUS_SERVICE,
		     CodechatDbusDaemon1Skeleton)

CodechatDbusService *
codechat_dbus_service_new(CodechatHub *hub, const gchar *listen_uri, const gchar *nick);
void
codechat_dbus_service_set_nick(CodechatDbusService *self, const gchar *nick);
GVariant *
codechat_dbus_message_to_variant(const CodechatMessage *msg);

G_END_DECLS
