/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include "codechat-hub.h"

G_BEGIN_DECLS

/*
 * codechatd's settings come from flags, then CODECHATD_* environment
 * variables, then the [daemon] group of the config file, then the built-in
 * defaults.  main() parses the options into a CodechatDaemonSettings (strings
 * NULL, numbers G_MININT, booleans FALSE when absent), then
 * codechat_daemon_settings_resolve_paths() and
 * codechat_daemon_settings_resolve() layer them over the environment and
 * the file and check the result.  The fuzzer runs the same code on a file.
 */
typedef struct {
	gchar *listen;	       /* (owned) (nullable) */
	gchar *data_dir;       /* (owned) (nullable) */
	gchar *sync;	       /* (owned) (nullable) */
	gchar *bus;	       /* (owned) (nullable) NULL once resolved: see default_bus() */
	gchar *notify;	       /* (owned) (nullable) */
	gchar *nick;	       /* (owned) (nullable) */
	gchar *log_format;     /* (owned) (nullable) */
	gchar *tls_cert;       /* (owned) (nullable) */
	gchar *tls_key;	       /* (owned) (nullable) */
	gchar *redis;	       /* (owned) (nullable) a redis:// or unix:// URL */
	GStrv allowed_origins; /* (owned) (nullable) */
	gboolean deflate;
	gboolean allow_anonymous;
	gint hello_timeout;
	gint rate;
	gint burst;
	gint keepalive;
	gint max_connections;
	gint max_per_address;
	gint handshake_timeout;
	gint max_handshakes;
	gint max_outbound;
	gint history_max;
	/* once resolved: the hub's numbers, and the server's handshake limits */
	CodechatHubConfig config;
	guint server_handshake_timeout;
	guint server_max_handshakes;
	guint store_history_max; /* messages kept per conversation at least, 0: all */
} CodechatDaemonSettings;

void
codechat_daemon_settings_init(CodechatDaemonSettings *settings);
void
codechat_daemon_settings_clear(CodechatDaemonSettings *settings);
void
codechat_daemon_settings_copy(CodechatDaemonSettings *dest, const CodechatDaemonSettings *src);
gboolean
codechat_daemon_config_load(const gchar *explicit_path,
			    GKeyFile **file,
			    gchar **file_path,
			    GError **error);
gboolean
codechat_daemon_settings_resolve_paths(CodechatDaemonSettings *settings,
				       GKeyFile *file,
				       const gchar *file_path,
				       GError **error);
gboolean
codechat_daemon_settings_resolve(CodechatDaemonSettings *settings,
				 GKeyFile *file,
				 const gchar *file_path,
				 GError **error);
gboolean
codechat_listen_is_loopback(const gchar *listen);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(CodechatDaemonSettings, codechat_daemon_settings_clear)

G_END_DECLS
