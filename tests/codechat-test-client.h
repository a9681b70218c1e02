/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define RUN_TIMEOUT_MS	 20000
#define WAIT_TIMEOUT_MS	 15000
#define POLL_INTERVAL_MS 100

gboolean
codechat_test_flag_cb(gpointer user_data);
gboolean
codechat_test_wait_until(gboolean *done, guint timeout_ms);
void
codechat_test_sleep_ms(guint ms);

GSubprocessLauncher *
codechat_test_client_launcher_new(GSubprocessFlags flags, const gchar *const *env);
/* for g_subprocess_wait_async(): sets the gboolean at @user_data */
void
codechat_test_wait_cb(GObject *source, GAsyncResult *result, gpointer user_data);
gint
codechat_test_wait_exit(GSubprocess *proc, guint timeout_ms);
gint
codechat_test_exit_status(gint status, const gchar *err);
gint
codechat_test_client_run(const gchar *const *env,
			 const gchar *input,
			 gchar **out,
			 gchar **err,
			 const gchar *first,
			 ...) G_GNUC_NULL_TERMINATED;

#define codechat_test_run(out, err, ...)                                                           \
	codechat_test_client_run(NULL, NULL, out, err, __VA_ARGS__, NULL)

/* g_test_dbus_up(), safe from GLib 2.74's descriptor race, with the bus's
 * stdout (and its activated services') away from the TAP stream */
void
codechat_test_dbus_up(GTestDBus *bus);

typedef struct {
	GInputStream *stream;	   /* (owned) */
	GCancellable *cancellable; /* (owned) */
	GString *text;		   /* (owned) what was read so far */
	gboolean eof;
	gboolean echo;
} CodechatTestErrReader;

CodechatTestErrReader *
codechat_test_err_reader_new(GInputStream *stream, gboolean echo);
void
codechat_test_err_reader_unref(CodechatTestErrReader *r);

/* a TCP relay between a client and the daemon that the test can cut, to
 * drop the client's connection without restarting the daemon */
typedef struct {
	GSocketService *service; /* (owned) */
	GPtrArray *streams;	 /* (owned) (element-type GIOStream) */
	gchar *uri;		 /* (owned) ws://127.0.0.1:PORT/v1/ws */
	guint16 port;
	guint16 upstream_port;
	gboolean refuse; /* close new connections at once */
	guint accepted;
} CodechatTestRelay;

CodechatTestRelay *
codechat_test_relay_new(guint16 upstream_port);
void
codechat_test_relay_cut(CodechatTestRelay *relay);
void
codechat_test_relay_free(CodechatTestRelay *relay);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatTestRelay, codechat_test_relay_free)

G_END_DECLS
