// context_owned.h: a C++ object owned by a PostgreSQL memory context.
//
// An ERROR longjmps past C++ destructors, so a Faiss index or a k-means
// object held across PostgreSQL calls is given to a memory context: the
// context's reset callback deletes it if the work fails, and release()
// takes it back when the work succeeds.
#pragma once

#include "pg/postgres_headers.h"

template <typename T>
struct ContextOwned {
    T* object;

    // A holder whose object (set later) is deleted when context is reset.
    static ContextOwned* create(MemoryContext context) {
        auto* holder =
            static_cast<ContextOwned*>(MemoryContextAllocZero(context, sizeof(ContextOwned)));
        auto* callback = static_cast<MemoryContextCallback*>(
            MemoryContextAllocZero(context, sizeof(MemoryContextCallback)));
        callback->func = [](void* arg) {
            auto* self = static_cast<ContextOwned*>(arg);
            delete self->object;
            self->object = nullptr;
        };
        callback->arg = holder;
        MemoryContextRegisterResetCallback(context, callback);
        return holder;
    }

    // Returns the object and stops owning it.
    T* release() {
        T* result = object;
        object = nullptr;
        return result;
    }
};
