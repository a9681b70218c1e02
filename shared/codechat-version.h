/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

const gchar *
codechat_version(void);
const gchar *
codechat_server_string(void);

G_END_DECLS
