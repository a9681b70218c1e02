/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * CodechatTestNotifications: a recording fake of
 * org.freedesktop.Notifications (a service outside the project) on a
 * private session bus (GTestDBus).  libnotify's calls are synchronous, so
 * the fake runs in a thread of its own, on a connection and a main
 * context of its own; each Notify is recorded before it is answered.
 */

/* one Notify call, as the fake received it */
typedef struct {
	gchar *app_name;
	guint replaces_id;
	gchar *summary;
	gchar *body;
	GVariant *hints; /* (owned) a{sv} */
	guint id;	 /* the answer */
} CodechatTestNotifyCall;

typedef struct _CodechatTestNotifications CodechatTestNotifications;

/* owns org.freedesktop.Notifications on @bus until stopped; @markup: it
 * claims body-markup; @fail: Notify answers an error.  The thread-default
 * main context of the caller is woken up at each Notify recorded. */
CodechatTestNotifications *
codechat_test_notifications_start(GTestDBus *bus, gboolean markup, gboolean fail);
void
codechat_test_notifications_stop(CodechatTestNotifications *fake);

/* the Notify calls recorded so far */
guint
codechat_test_notifications_n_calls(CodechatTestNotifications *fake);
/* call @i (which must exist), not a copy: calls are only added, never
 * removed, until the fake stops */
CodechatTestNotifyCall *
codechat_test_notifications_call(CodechatTestNotifications *fake, guint i);
/* calls other than Notify: GetCapabilities, GetServerInformation,
 * CloseNotification */
guint
codechat_test_notifications_n_other_calls(CodechatTestNotifications *fake);
/* iterates the thread-default main context until the fake has recorded
 * @n Notify calls or @ms passed; returns how many it has */
guint
codechat_test_notifications_wait(CodechatTestNotifications *fake, guint n, guint ms);

/* a string hint of a call, or %NULL */
const gchar *
codechat_test_notify_hint_string(GVariant *hints, const gchar *key);

G_END_DECLS
