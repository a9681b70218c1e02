/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* a real codechatd started on a free loopback port for one test */
typedef struct {
	GSubprocess *proc; /* (owned) */
	gchar *uri;	   /* (owned) ws://127.0.0.1:PORT/v1/ws, or wss:// */
	gchar *http_base;  /* (owned) http://127.0.0.1:PORT, or https:// */
	gchar *data_dir;   /* (owned) a fresh temporary directory */
	guint16 port;
	gboolean tls; /* started with --tls-cert: wss:// and https:// */
} CodechatTestDaemon;

const gchar *
codechat_test_daemon_path(void);
const gchar *
codechat_test_client_path(void);
CodechatTestDaemon *
codechat_test_daemon_start(const gchar *const *extra_args);
CodechatTestDaemon *
codechat_test_daemon_start_in(const gchar *data_dir,
			      const gchar *listen,
			      const gchar *const *extra_args);
gint
codechat_test_daemon_stop(CodechatTestDaemon *daemon);
void
codechat_test_daemon_free(CodechatTestDaemon *daemon);
void
codechat_test_rm_rf(const gchar *path);
gchar *
codechat_test_daemon_redis_start(const gchar *redis_server, const gchar *data_dir);
void
codechat_test_daemon_redis_stop(const gchar *data_dir);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatTestDaemon, codechat_test_daemon_free)

G_END_DECLS
